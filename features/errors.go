package features

import "errors"

// Sentinel errors. Every error returned by this package wraps one of these
// (test with errors.Is) together with context about the failing input.
var (
	// ErrConfig reports an invalid Config or a memory area of the wrong size
	// or alignment for Create.
	ErrConfig = errors.New("features: invalid config")
	// ErrCorrupt reports a registry area whose header or descriptors are
	// inconsistent (bad magic, version, offsets outside the area...).
	ErrCorrupt = errors.New("features: corrupt registry")
	// ErrSchema reports an invalid Schema definition.
	ErrSchema = errors.New("features: invalid schema")
	// ErrNoSpace reports a schema that does not fit: schema table full,
	// arena exhausted, or a limit of the registry's Config exceeded.
	ErrNoSpace = errors.New("features: schema does not fit")
	// ErrSchemaExists reports a Register of a name that is already taken.
	ErrSchemaExists = errors.New("features: schema already registered")
	// ErrUnknownSchema reports a SchemaID or name that is not registered.
	ErrUnknownSchema = errors.New("features: unknown schema")
	// ErrUnknownKey reports a key that has no history in a schema.
	ErrUnknownKey = errors.New("features: unknown key")
	// ErrKeyCapacity reports a new key beyond the schema's key capacity.
	ErrKeyCapacity = errors.New("features: key capacity exhausted")
	// ErrWidth reports a payload, field or element that does not match the
	// schema (wrong record size, field index, element index or value range).
	ErrWidth = errors.New("features: width mismatch")
	// ErrWindow reports an invalid window length or vector age.
	ErrWindow = errors.New("features: invalid window")
	// ErrBusy reports a key slot that stayed in the middle of an insertion
	// for too long (another inserter stalled or died mid-insertion), or a
	// registration lock held too long.
	ErrBusy = errors.New("features: registry busy")
	// ErrLost reports a sample that was not recorded because the ring
	// record it reserved was still being written by an older writer (the
	// ring wrapped under it). The loss is also counted in the key's Lost
	// counter; writers never wait.
	ErrLost = errors.New("features: sample lost to a concurrent writer")
	// ErrOwned reports a Record, Own or DropKey of a key that a Writer
	// (Registry.Own) owns: only its owner records into it or drops it.
	ErrOwned = errors.New("features: key owned by a writer")
	// ErrNotOwner reports a Writer used after Close or Drop, or one whose
	// ownership was taken away (its area was changed under it).
	ErrNotOwner = errors.New("features: writer does not own its key")
)
