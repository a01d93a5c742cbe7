// Package blktrace owns lake's eBPF block I/O tracer: a BPF program on the
// block_rq_issue and block_rq_complete tracepoints (bpf/blktrace.c, compiled
// by bpf2go; the objects are committed) that records, per request on the
// watched devices, the device, op, sector, size, the number of requests in
// flight on that device at issue (queue depth), and the issue and completion
// times, and sends them to user space through a BPF ring buffer.
//
// Events are decoded (DecodeEvent, fuzzed) and can be fed to the lock-free
// feature registry as LinnOS inputs (arrivals with their queue depth) and
// labels (completion latencies) by a FeatureSink. Events the kernel could not
// queue because the ring buffer was full are counted (Stats.Lost), so a
// consumer always knows how much of the trace is missing.
//
// Attaching needs root (CAP_BPF + CAP_PERFMON) and kernel BTF: the programs
// are BTF raw tracepoints (tp_btf) reading struct request through CO-RE, see
// bpf/blktrace.c for why not perf tracepoints. The tracer is Linux-only; the
// event format and the sink are portable.
package blktrace
