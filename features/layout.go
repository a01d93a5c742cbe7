package features

// Byte layout of the registry area. shm/PROTOCOL.md ("Feature registry area") documents every offset below
// and lakelib/include/lake_features.h mirrors them; layout_c_test.go checks
// the C header against these constants.

// Magic is the first 8 bytes of a registry area: "LAKEFEAT" read as a
// little-endian u64.
const Magic uint64 = 0x5441454645_4B414C

// Version is the layout version written by Create and required by Attach.
const Version uint32 = 2

// HeaderSize is the size in bytes of the registry header at offset 0.
const HeaderSize = 128

// MaxFields is the number of field descriptors in every schema entry: a
// schema has at most MaxFields fields.
const MaxFields = 16

// MaxNameLen is the longest schema name in bytes.
const MaxNameLen = 32

// MaxFieldNameLen is the longest field name in bytes.
const MaxFieldNameLen = 24

// Header field offsets.
const (
	hdrMagic           = 0  // u64
	hdrVersion         = 8  // u32
	hdrHeaderSize      = 12 // u32
	hdrTotalSize       = 16 // u64
	hdrMaxSchemas      = 24 // u32
	hdrMaxFields       = 28 // u32
	hdrMaxKeys         = 32 // u32
	hdrMaxHistory      = 36 // u32
	hdrMaxRecord       = 40 // u32
	hdrSchemaEntrySize = 44 // u32
	hdrSchemaTableOff  = 48 // u64
	hdrArenaOff        = 56 // u64
	hdrArenaSize       = 64 // u64
	hdrArenaUsed       = 72 // u64, changes (under reg_lock)
	hdrSchemaCount     = 80 // u32, changes (under reg_lock)
	hdrRegLock         = 84 // u32, 0 free / holder's pid (CAS)
	hdrReserved        = 88 // 40 bytes of zero
)

// Schema entry layout (schemaEntrySize bytes each, table at
// hdrSchemaTableOff, entry i at hdrSchemaTableOff + i*schemaEntrySize).
const (
	schState        = 0   // u32: 0 free, 1 ready (published with a release store)
	schID           = 4   // u32: equals the entry index
	schName         = 8   // [32]byte, NUL padded
	schNFields      = 40  // u32
	schHistory      = 44  // u32: declared history length (max window)
	schRingLen      = 48  // u32: records per key ring, power of two >= history
	schRecordSize   = 52  // u32: payload bytes, multiple of 8
	schRecordStride = 56  // u32: recHdrSize + record size
	schKeyCapacity  = 60  // u32: max live keys
	schTableSize    = 64  // u32: key slots, power of two >= key capacity
	schLiveKeys     = 68  // u32: atomic count of live (and claiming) keys
	schKeyTableOff  = 72  // u64: offset of the key table from the area start
	schRingOff      = 80  // u64: offset of the rings from the area start
	schReserved     = 88  // 40 bytes of zero
	schFields       = 128 // [MaxFields]field descriptor
	schemaEntrySize = schFields + MaxFields*fieldDescSize

	schemaStateFree  = 0
	schemaStateReady = 1
)

// Field descriptor layout.
const (
	fdName        = 0  // [24]byte, NUL padded
	fdType        = 24 // u8 FieldType
	fdReserved    = 25 // u8 zero
	fdCount       = 26 // u16 width (array count), >= 1
	fdOffset      = 28 // u32 byte offset inside the payload
	fieldDescSize = 32
)

// Key slot layout (keySlotSize bytes, key table of a schema at its
// schKeyTableOff, slot i at +i*keySlotSize).
const (
	slotState    = 0  // u64: generation<<3 | state
	slotKey      = 8  // u64
	slotWriteIdx = 16 // u64: free-running record index, fetch-add by writers
	slotBaseIdx  = 24 // u64: first record index of the current generation
	slotLost     = 32 // u64: samples lost to ring contention
	slotOwner    = 40 // u64: token pid<<32 | low 32 bits of the generation of the slot's claimer (busy, claimed) or owner (owned)
	slotOwnBase  = 48 // u64: first record index of the current ownership, meaningful while owned
	slotReserved = 56 // 8 bytes of zero
	keySlotSize  = 64
)

// Key slot states (low 3 bits of the slot state word).
const (
	stEmpty   = 0 // never used; terminates probe chains
	stBusy    = 1 // being claimed; key word not yet valid
	stClaimed = 2 // key word valid; inserter checking for duplicates
	stLive    = 3 // key present, accepting records
	stDead    = 4 // dropped or abandoned; reusable; does not end chains
	stOwned   = 5 // key present, written by its owner only (Registry.Own)
	stMask    = 7
	genShift  = 3
)

// Record layout (stride = recHdrSize + record size; ring of a key slot i at
// schRingOff + i*ringLen*stride, record index n at (n & (ringLen-1))*stride).
const (
	recSeq     = 0 // u64: 0 never written, 2n+1 index n in progress, 2n+2 index n complete
	recLost    = 8 // u64: n+1 for the highest index n whose writer gave up on this record
	recHdrSize = 16
)

// Limits on Config values.
const (
	limitSchemas = 4096
	limitKeys    = 1 << 24
	limitHistory = 1 << 20
	limitRecord  = 1 << 16
	limitArena   = 1 << 40
)

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// tableSizeFor returns the key table size for a key capacity: a power of
// two keeping the load factor at or below 80%.
func tableSizeFor(keys uint64) uint64 { return nextPow2(keys + keys/4) }

func nextPow2(v uint64) uint64 {
	p := uint64(1)
	for p < v {
		p <<= 1
	}
	return p
}

// mix64 is the key hash (the murmur3 64-bit finalizer); the C header uses
// the same function.
func mix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
