//go:build race

package main

// raceBuild: the race detector multiplies laked's memory, so RSS bounds
// are only asserted without it.
const raceBuild = true
