package zookeeper

import "reflect"

// Session returns the id and password of the client's session, for a test
// that takes the session over to close it. The client library keeps the
// password unexported, so it is read by reflection: test-only.
func Session(c *Client) (int64, []byte) {
	pw := reflect.ValueOf(c.conn).Elem().FieldByName("passwd").Bytes()
	return c.conn.SessionID(), append([]byte(nil), pw...)
}
