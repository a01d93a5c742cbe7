// Package sdactivate owns laked's side of socket activation
// (sd_listen_fds(3)): taking the listening sockets a service manager
// (systemd's laked.socket and laked-admin.socket) created and passed to
// laked, so that clients connecting while laked restarts wait in the
// socket's backlog instead of failing.
//
// The protocol needs no library: the sockets are file descriptors 3, 4,
// ... of the process; $LISTEN_PID names the process they are for,
// $LISTEN_FDS how many there are and $LISTEN_FDNAMES their names
// (FileDescriptorName= in the socket unit), colon-separated.
//
// The environment and the descriptors are untrusted input: a malformed
// or oversized $LISTEN_FDS, a name count that does not match, or a
// descriptor that is not a listening unix stream socket is an error that
// names the variable or the descriptor, never a panic. A descriptor that
// fails the check is left alone (it may be one the Go runtime opened), so
// a lying environment cannot make laked close its own files. Without
// $LISTEN_PID, or with one naming another process, there are no passed
// sockets and laked creates its own.
package sdactivate
