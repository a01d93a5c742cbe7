// Package apps holds what the LiteFlow example apps (aurora, flowsize)
// share: the serving modes they compare.
package apps
