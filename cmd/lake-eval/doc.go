// Command lake-eval is the real block I/O evaluation of LinnOS (make eval):
// it drives fio job files (eval/jobs) against a loop device backed by a file
// (or a user-given device), records every run with the eBPF block tracer
// (eval/blktrace), trains LinnOS on the first part of each recorded trace
// and reports, on the rest, accuracy, false-submit and false-revoke rates and
// the read latency percentiles of revoke-and-retry over recorded replicas
// (eval/recorded). It prints a table, writes it with CDF plots (PNG) and
// the traces into a results folder, and finally serves predictions live
// from an in-process laked for the reads of a traced run as they arrive,
// reporting the inference latency seen by the caller. Needs root and fio;
// Linux only.
package main
