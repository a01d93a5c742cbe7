package features

import "fmt"

// Config sets the capacity limits of a registry. Zero fields take the
// defaults below; Create and SizeFor apply them.
type Config struct {
	// MaxSchemas is the number of schema entries (default 16).
	MaxSchemas int
	// MaxKeys is the largest key capacity a schema may ask for (default 4096).
	MaxKeys int
	// MaxHistory is the largest history length a schema may ask for
	// (default 1024).
	MaxHistory int
	// MaxRecordBytes is the largest payload a schema's record may have
	// (default 512).
	MaxRecordBytes int
	// ArenaBytes is the space shared by all schemas' key tables and rings
	// (default 4 MiB). A schema needs table*64 + table*ringLen*(16+payload)
	// bytes where table = next_pow2(keys + keys/4) (load factor <= 80%)
	// and ringLen = next_pow2(history).
	ArenaBytes int
}

// Defaults used for zero Config fields.
const (
	DefaultMaxSchemas     = 16
	DefaultMaxKeys        = 4096
	DefaultMaxHistory     = 1024
	DefaultMaxRecordBytes = 512
	DefaultArenaBytes     = 4 << 20
)

func (c Config) withDefaults() Config {
	if c.MaxSchemas == 0 {
		c.MaxSchemas = DefaultMaxSchemas
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.MaxHistory == 0 {
		c.MaxHistory = DefaultMaxHistory
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.ArenaBytes == 0 {
		c.ArenaBytes = DefaultArenaBytes
	}
	return c
}

// Validate reports whether the config (after defaults) is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	check := func(name string, v, max int) error {
		if v < 1 || v > max {
			return fmt.Errorf("%w: %s = %d, want 1..%d", ErrConfig, name, v, max)
		}
		return nil
	}
	if err := check("MaxSchemas", c.MaxSchemas, limitSchemas); err != nil {
		return err
	}
	if err := check("MaxKeys", c.MaxKeys, limitKeys); err != nil {
		return err
	}
	if err := check("MaxHistory", c.MaxHistory, limitHistory); err != nil {
		return err
	}
	if err := check("MaxRecordBytes", c.MaxRecordBytes, limitRecord); err != nil {
		return err
	}
	if err := check("ArenaBytes", c.ArenaBytes, limitArena); err != nil {
		return err
	}
	return nil
}

// layout returns the schema table offset, arena offset and arena size.
func (c Config) layout() (tableOff, arenaOff, arenaSize uint64) {
	tableOff = HeaderSize
	arenaOff = alignUp(tableOff+uint64(c.MaxSchemas)*schemaEntrySize, 64)
	arenaSize = alignUp(uint64(c.ArenaBytes), 64)
	return
}

// SizeFor returns the number of bytes a registry with this config needs
// (header, schema table and arena), or 0 if the config is invalid.
func SizeFor(cfg Config) int {
	if cfg.Validate() != nil {
		return 0
	}
	_, off, size := cfg.withDefaults().layout()
	return int(off + size)
}
