package zookeeper

// Session returns the id and password of the client's session, for a test
// that takes the session over to close it; 0 and nil without a session.
func Session(c *Client) (int64, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return 0, nil
	}
	s := c.conn.Session()
	return s.ID, s.Passwd
}

// Resyncs returns how many times Watch set its watches again on a new
// connection and compared a fresh walk with what it had returned.
func Resyncs(c *Client) int64 { return c.resyncs.Load() }

// Roots returns the znodes Watch sets a persistent recursive watch on for
// prefixes.
func Roots(prefixes []string) []string { return roots(merge(prefixes)) }
