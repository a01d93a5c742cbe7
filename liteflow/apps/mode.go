package apps

import "fmt"

// Mode is a way of serving an app's model.
type Mode int

// Modes the apps compare.
const (
	// Static answers every query from the first snapshot, never adapting.
	Static Mode = iota
	// LiteFlow answers from a snapshot and installs adapted ones under
	// the adapter's rules.
	LiteFlow
	// SlowPath answers every query with the userspace float model, paying
	// a modelled crossing per query.
	SlowPath
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Static:
		return "static snapshot"
	case LiteFlow:
		return "liteflow adaptation"
	case SlowPath:
		return "slow path (userspace per query)"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Valid reports whether m is one of the modes above.
func (m Mode) Valid() bool { return m >= Static && m <= SlowPath }
