//go:build race

package linnos

const raceEnabled = true
