// Package liteflow is the root of lake's LiteFlow-style adaptive model
// support. It holds no code of its own; the work is split into small
// packages, each with one job:
//
//   - model: the user-facing model interfaces (freeze, evaluate, adapt) and
//     float MLPs with ReLU, tanh and sigmoid layers.
//   - fixedpoint: TFLite-reference fixed-point requantization helpers.
//   - snapshot: the versioned, checksummed integer snapshot format
//     (SNAPSHOT.md) and the Go reference integer engine that executes it.
//   - quant: post-training full-integer quantization of a float MLP into a
//     snapshot, and the per-layer error report.
//   - adapt: online adaptation (stability, fidelity loss, rate-limited
//     installs).
//   - router: the active/standby snapshot router with its flow cache, the
//     serving hook for laked.
//   - apps/aurora, apps/flowsize: example applications in simulators whose
//     environment changes, comparing static, adaptive and slow-path serving.
package liteflow
