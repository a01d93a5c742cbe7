package lakelib

import (
	"errors"
	"fmt"

	"github.com/lakeos/lake/shm"
)

// Errors a call can return besides a *StatusError.
var (
	// ErrDaemonGone means laked closed the session (it stopped or died).
	ErrDaemonGone = errors.New("lakelib: laked is gone")
	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("lakelib: client closed")
	// ErrLostInRestart means laked went away after taking the operation
	// from the ring and before completing it; the new laked will not run
	// it. It may or may not have taken effect.
	ErrLostInRestart = errors.New("lakelib: laked restarted before completing the operation")
)

// statusLost is the internal status of a call failed by a re-attach (not
// a protocol status: laked never sends negative statuses).
const statusLost shm.Status = -1

// ErrDeadline matches (errors.Is) a predict that laked answered "deadline
// exceeded": it could not run within the caller's deadline and did not run.
var ErrDeadline = ErrStatus(shm.StatusDeadline)

// StatusError is a completion with a non-zero status.
type StatusError struct {
	Op     shm.Opcode
	Status shm.Status
}

func (e *StatusError) Error() string { return fmt.Sprintf("lakelib: %s: %s", e.Op, e.Status) }

// Is lets errors.Is match a StatusError against a Status value wrapped
// with ErrStatus.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Op == 0 && t.Status == e.Status
}

// ErrStatus returns an error that matches, with errors.Is, any
// StatusError carrying st: errors.Is(err, lakelib.ErrStatus(shm.StatusNotFound)).
func ErrStatus(st shm.Status) error { return &StatusError{Status: st} }
