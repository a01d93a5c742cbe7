// Package fio runs the fio benchmark (Debian's package) and decodes its JSON
// output: per direction I/O counts, bytes and completion-latency statistics.
// fio's output is untrusted input: Parse validates it and is fuzzed.
package fio
