//go:build race

package aurora

// raceEnabled shrinks the simulations under the race detector, which slows
// numeric code down about twentyfold.
const raceEnabled = true
