// Package lakedtest starts in-process laked servers for tests: the CPU
// backend, the lake_builtin kernels and the demo MLP served as model
// DemoMLP, on a unix socket in the test's temp dir, shut down when the
// test ends. It also has the vector_add sequence several tests run, and
// BurstProcs, which finds lakectl burst processes a test must not leave
// behind.
package lakedtest
