// Package retrain (re)trains a LinnOS model per device from the reads a
// kernel producer (the dm-linnos target) records in the feature registry,
// checks it on held-out recent I/O, and installs it: laked replaces the
// model it serves for that device, the version grows, and the kernel,
// which polls the version, fetches the new image (model_fetch).
//
// What it owns: the per-device sample windows rebuilt from
// linnos.completion records, the training schedule, the checks (accuracy
// against the recorded latencies, fidelity of the integer model to the
// float model it was quantized from, no regression against the model in
// service) and the per-device status lakectl shows.
//
// What it trusts: nothing in the registry. Records come from the kernel
// (or any process sharing the region): counters that go backwards, a read
// that "arrived" after it completed, ordinals that repeat, or history that
// was never recorded make the sample be skipped and counted, never
// trained on. The Installer (laked) is trusted to serve what it is given.
package retrain
