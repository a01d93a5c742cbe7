// Package adapt owns LiteFlow's online adaptation loop: it trains the
// user's float model on batches of samples (from the feature registry or
// from predict traffic), judges stability (the training loss, smoothed by
// an exponential moving average, varies by less than a set fraction over a
// window of batches), measures fidelity loss
// (mean |f'(x) - f(x)| between the new float model f' and the installed
// snapshot f on recent inputs), and installs a freshly quantized snapshot
// only when the model is stable, the fidelity loss exceeds a threshold and
// the last install is older than the rate limit.
package adapt
