package zkwire

import (
	"errors"
	"fmt"
)

// Error is an error code of the server (KeeperException.Code), as the
// reply header of a request carries it. Compare with errors.Is and the
// Err values below.
type Error int32

// The server's error codes this client reports by name.
const (
	ErrNoNode         Error = -101
	ErrNoAuth         Error = -102
	ErrBadArguments   Error = -8
	ErrUnimplemented  Error = -6
	ErrAuthFailed     Error = -115
	ErrSessionMoved   Error = -118
	ErrInvalidACL     Error = -114
	ErrRequestTimeout Error = -122
	ErrThrottled      Error = -127

	errNoWatcher Error = -121
)

var errorNames = map[Error]string{
	-1:   "system error",
	-2:   "runtime inconsistency",
	-3:   "data inconsistency",
	-4:   "connection loss",
	-5:   "marshalling error",
	-6:   "unimplemented",
	-7:   "operation timeout",
	-8:   "bad arguments",
	-12:  "unknown session",
	-13:  "new config no quorum",
	-14:  "reconfig in progress",
	-100: "api error",
	-101: "no node",
	-102: "not authenticated",
	-103: "bad version",
	-108: "no children for ephemerals",
	-110: "node exists",
	-111: "not empty",
	-112: "session expired",
	-113: "invalid callback",
	-114: "invalid ACL",
	-115: "authentication failed",
	-118: "session moved",
	-119: "not read only",
	-120: "ephemeral on local session",
	-121: "no watcher",
	-122: "request timeout",
	-123: "reconfig disabled",
	-124: "session closed, SASL required",
	-125: "quota exceeded",
	-127: "throttled",
}

func (e Error) Error() string {
	if n, ok := errorNames[e]; ok {
		return "zkwire: server: " + n
	}
	return fmt.Sprintf("zkwire: server error %d", int32(e))
}

// Errors of the connection. Every request of a connection that ended
// fails with one of them, wrapped.
var (
	// ErrSessionExpired reports that the server ended the session: it
	// expired, or another client closed it. Its watches are gone; a new
	// session starts from scratch.
	ErrSessionExpired = errors.New("zkwire: session expired")
	// ErrConnectionLost reports that the connection to the server ended
	// (an I/O error, or no message within the read timeout); the session
	// may live on, until its timeout, for a connection that resumes it.
	ErrConnectionLost = errors.New("zkwire: connection lost")
	// ErrClosed reports a call after [Conn.Close].
	ErrClosed = errors.New("zkwire: closed")
)
