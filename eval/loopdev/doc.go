// Package loopdev creates loop block devices backed by files (losetup) for
// the evaluation and the tracer test, and always detaches them.
package loopdev
