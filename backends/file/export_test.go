package file

import "time"

// SetDebounce sets the debounce of c's watch (see [Client]); call it before
// the first Watch.
func SetDebounce(c *Client, quiet, maxWait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quiet, c.maxWait = quiet, maxWait
}
