//go:build race

package main

// raceBuild: -race slows predicts several-fold, so load phases are sized
// down with it.
const raceBuild = true
