// Package unitfile reads the systemd unit files in deploy/ for the tests
// that check them against the code (laked.service's directives,
// laked.socket's paths and names). It owns only the subset of the unit
// syntax those files use: comments, [Section] headers and key=value lines
// (keys may repeat); it trusts nothing and reports any other line.
package unitfile
