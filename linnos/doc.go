// Package linnos implements LinnOS (OSDI'20): a per-device neural network that
// predicts, for every read I/O, whether it will be fast or slow so that a slow
// read can be revoked and retried on another replica.
//
// The package owns:
//
//   - the 31-digit input features and a per-device feature Extractor;
//   - the model (31→256→2 and the +1/+2 variants with extra 256-wide ReLU
//     layers), a float32 path and the integer path that is bit-exact with the
//     LinnOS reference (weights ×10³, biases scaled to match, int64
//     accumulation), run on vecmath's vector kernels with the scalar code
//     as the reference;
//   - a checksummed binary weight format and an importer for the reference C
//     header format (weight_0_T, weight_1_T, bias_0, bias_1, ...);
//   - training (automatic slow threshold at the latency-CDF inflection point,
//     80/20 split, Adam, minibatches, class-biased loss);
//   - a synthetic trace generator (Azure, Bing-I, Cosmos presets), a
//     deterministic SSD latency model with internal activity (write-buffer
//     flushes, garbage collection, queueing);
//   - a replayer over N replicas with baseline, hedging, LinnOS and
//     LinnOS+hedging modes, reporting latency percentiles, accuracy and the
//     false-submit/false-revoke rates, and a latency CDF plot; the replayer can
//     also issue reads to real files or block devices with O_DIRECT (Linux);
//   - RunDemo, the one-call demo used by laked's default job.
//
// The formats and the SSD model parameters are documented in README.md in this
// directory.
package linnos
