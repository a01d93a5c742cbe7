// Package regfile reads files named by untrusted requests (model and
// policy files laked is asked to load): only regular files, opened
// without waiting (a FIFO cannot block the reader), at most a given size
// (a device like /dev/zero or a growing file cannot exhaust memory), and
// stopping when the caller's context ends. It trusts nothing about the
// file but the kernel's fstat.
package regfile
