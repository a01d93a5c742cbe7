//go:build !race

package aurora

const raceEnabled = false
