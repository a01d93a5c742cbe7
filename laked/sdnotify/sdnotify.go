package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variables of the protocol.
const (
	// EnvSocket names the notification socket.
	EnvSocket = "NOTIFY_SOCKET"
	// EnvWatchdogUsec is the watchdog timeout in microseconds.
	EnvWatchdogUsec = "WATCHDOG_USEC"
	// EnvWatchdogPID, when set, is the pid the watchdog applies to.
	EnvWatchdogPID = "WATCHDOG_PID"
)

// ErrBadSocket is wrapped when $NOTIFY_SOCKET cannot name a unix datagram
// socket.
var ErrBadSocket = errors.New("sdnotify: bad " + EnvSocket)

// ErrBadState is wrapped when a state string cannot be sent.
var ErrBadState = errors.New("sdnotify: bad state")

// maxSocketPath is the longest sun_path (including the leading '@').
const maxSocketPath = 107

// maxStateBytes bounds one notification; systemd reads at most a page-ish
// datagram and laked never sends more than a few lines.
const maxStateBytes = 4096

// lookupEnv is os.LookupEnv; tests use t.Setenv, which it honours.
var lookupEnv = os.LookupEnv

// socketAddr validates $NOTIFY_SOCKET. ok is false when it is unset or
// empty (notifications are then no-ops).
func socketAddr() (addr *net.UnixAddr, ok bool, err error) {
	name, set := lookupEnv(EnvSocket)
	if !set || name == "" {
		return nil, false, nil
	}
	switch {
	case len(name) > maxSocketPath:
		return nil, false, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadSocket, len(name), maxSocketPath)
	case strings.IndexByte(name, 0) >= 0:
		return nil, false, fmt.Errorf("%w: contains a NUL byte", ErrBadSocket)
	case name[0] == '@':
		if len(name) == 1 {
			return nil, false, fmt.Errorf("%w: empty abstract socket name", ErrBadSocket)
		}
	case name[0] == '/':
	default:
		// systemd also knows vsock: addresses; laked never runs in a VM
		// guest under a host's manager, so they are refused clearly.
		return nil, false, fmt.Errorf("%w: %q is neither an absolute path nor an abstract name starting with '@'", ErrBadSocket, name)
	}
	// Go maps a leading '@' to the Linux abstract namespace.
	return &net.UnixAddr{Name: name, Net: "unixgram"}, true, nil
}

// Notify sends state (one or more NEWLINE-separated VAR=value
// assignments, see sd_notify(3)) to the service manager. It is a no-op
// that returns nil when $NOTIFY_SOCKET is not set.
func Notify(state string) error {
	if state == "" || len(state) > maxStateBytes || strings.IndexByte(state, 0) >= 0 {
		return fmt.Errorf("%w: %d bytes (want 1..%d, no NUL)", ErrBadState, len(state), maxStateBytes)
	}
	addr, ok, err := socketAddr()
	if err != nil || !ok {
		return err
	}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("sdnotify: connect %s: %w", addr.Name, err)
	}
	defer conn.Close()
	// A datagram socket never blocks for long; the deadline guards against
	// a manager that stopped reading and a full receive queue.
	if err := conn.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", addr.Name, err)
	}
	return nil
}

// Ready tells the manager that start-up is complete (READY=1): for laked,
// after the region socket listens and the configured models are loaded.
func Ready() error { return Notify("READY=1") }

// Reloading tells the manager a configuration reload started
// (RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd 253+ wants);
// send Ready when it is done.
func Reloading() error {
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping tells the manager that laked is shutting down (STOPPING=1).
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line status text systemctl status shows.
func Status(text string) error {
	if strings.ContainsAny(text, "\n") {
		return fmt.Errorf("%w: status text has a newline", ErrBadState)
	}
	return Notify("STATUS=" + text)
}

// Watchdog feeds the watchdog (WATCHDOG=1).
func Watchdog() error { return Notify("WATCHDOG=1") }

// maxWatchdog bounds $WATCHDOG_USEC (a year) so that conversions never
// overflow.
const maxWatchdog = 365 * 24 * time.Hour

// WatchdogInterval returns the watchdog timeout the manager expects pings
// within, and whether the watchdog is enabled for this process: it is off
// when $WATCHDOG_USEC is unset, zero or malformed, or when $WATCHDOG_PID is
// set to a pid other than this process's.
func WatchdogInterval() (time.Duration, bool) {
	d, err := watchdogInterval(os.Getpid())
	return d, err == nil && d > 0
}

// watchdogInterval parses the environment; it returns 0 and nil when the
// watchdog is simply not configured, and an error when a value is bad.
func watchdogInterval(pid int) (time.Duration, error) {
	us, set := lookupEnv(EnvWatchdogUsec)
	if !set || us == "" {
		return 0, nil
	}
	if p, set := lookupEnv(EnvWatchdogPID); set && p != "" {
		n, err := strconv.ParseUint(p, 10, 31)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("sdnotify: bad %s %q", EnvWatchdogPID, p)
		}
		if int(n) != pid {
			return 0, nil
		}
	}
	v, err := strconv.ParseUint(us, 10, 64)
	if err != nil || v == 0 || v > uint64(maxWatchdog/time.Microsecond) {
		return 0, fmt.Errorf("sdnotify: bad %s %q: want 1..%d microseconds", EnvWatchdogUsec, us, uint64(maxWatchdog/time.Microsecond))
	}
	return time.Duration(v) * time.Microsecond, nil
}

// RunWatchdog pings the watchdog at half the interval while healthy
// returns true, until ctx ends; it pings once at once. When healthy
// returns false it skips that ping, so a laked that stays wedged is
// restarted by the manager. It returns nil at once when the watchdog is
// not enabled, the error of a bad $WATCHDOG_USEC/$WATCHDOG_PID, and nil
// when ctx ends. A failed ping does not stop the loop (the manager may be
// restarting); the last send error is returned if ctx ends after it.
func RunWatchdog(ctx context.Context, healthy func() bool) error {
	d, err := watchdogInterval(os.Getpid())
	if err != nil || d == 0 {
		return err
	}
	period := d / 2
	if period <= 0 {
		period = 1
	}
	t := time.NewTicker(period)
	defer t.Stop()
	var lastErr error
	for {
		if healthy == nil || healthy() {
			lastErr = Watchdog()
		}
		select {
		case <-ctx.Done():
			return lastErr
		case <-t.C:
		}
	}
}
