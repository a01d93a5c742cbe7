// Command lake-tcpgen is the static traffic generator of the LiteFlow VM
// test (kernel/vmtest/phase-liteflow.sh): a server that sinks bulk
// connections and answers short flows, and a client that runs one bulk
// flow (throughput and RTT from TCP_INFO) plus a short flow every
// -flow-every (flow completion time) for -duration, runs -change-cmd (a tc
// netem change) at -change, and prints when it made the change (unix ms)
// and one summary line per phase: before the change (0), after it (1),
// and the second half after it (2). It trusts nothing it reads from the network: the
// server bounds every size it is sent.
package main
