//go:build !race

package flowsize

const raceEnabled = false
