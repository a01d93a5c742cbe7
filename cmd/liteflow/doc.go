// Command liteflow makes and inspects LiteFlow snapshot files
// (liteflow/SNAPSHOT.md): the Aurora congestion-control policy the kernel
// module tcp_lake starts from, small test snapshots, and a summary of any
// snapshot file (validated like every reader does).
package main
