// Package sdnotify owns laked's side of the systemd service notification
// protocol (sd_notify(3)): telling the service manager that laked is ready
// (READY=1), reloading (RELOADING=1), stopping (STOPPING=1), what it is
// doing (STATUS=...), and keeping the watchdog fed (WATCHDOG=1) while laked
// is healthy.
//
// It needs no library: a notification is one datagram written to the unix
// socket named by $NOTIFY_SOCKET (a path, or an abstract socket name that
// starts with '@'). Without $NOTIFY_SOCKET every call is a no-op, so laked
// behaves the same when started by hand. The watchdog interval comes from
// $WATCHDOG_USEC, and applies only to this process when $WATCHDOG_PID is
// set to another pid.
//
// The environment is untrusted input: a malformed $NOTIFY_SOCKET,
// $WATCHDOG_USEC or $WATCHDOG_PID yields an error (or a disabled watchdog),
// never a panic.
package sdnotify
