//go:build !race

package linnos

const raceEnabled = false
