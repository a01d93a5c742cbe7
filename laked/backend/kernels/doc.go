// Package kernels owns laked's builtin Go kernels and the MLP model
// format they share with the predict path.
//
// Register adds module "lake_builtin" to the CPU backend's registry
// (package cpu does not import this package, so there is no cycle; laked
// calls Register once at start-up). The module has two kernels:
//
//   - vector_add(a, b, c, n): c[i] = a[i] + b[i] for i < n, float32. It
//     has grid-stride-loop semantics (every i < n is covered whatever the
//     launch shape) but runs as one plain loop.
//   - mlp_forward(model, in, out, n): runs the MLP blob at device address
//     model over n items of float32 input at in, writing float32 outputs
//     at out (see the blob format in mlp.go).
//
// MLP is the Go-level form of the same model: parse a blob once with
// ParseMLP and call Forward, which is allocation-free for models whose
// input and layers are at most StackWidth wide, and whose result for an
// item is bit-identical whatever batch the item is part of. mlp_forward
// builds an MLP over the blob in device memory (without copying the
// weights) and calls the same Forward, so a launch and a direct predict
// compute identical results.
package kernels
