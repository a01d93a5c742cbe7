//go:build !race

package lakelib_test

const raceEnabled = false
