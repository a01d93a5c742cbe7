package features

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Registry is a feature registry inside a memory area. All methods are safe
// for concurrent use by any number of goroutines, and other processes (or a
// C producer) may use the same area at the same time.
type Registry struct {
	mem  []byte // keeps the area alive; never resliced
	base unsafe.Pointer
	size uint64 // bytes of mem that belong to the registry

	maxSchemas uint32
	maxKeys    uint32
	maxHistory uint32
	maxRecord  uint32
	tableOff   uint64
	arenaOff   uint64
	arenaSize  uint64

	cache []atomic.Pointer[SchemaInfo]
	regMu sync.Mutex
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

func checkMem(mem []byte) error {
	if !littleEndian() {
		return fmt.Errorf("%w: the registry layout is little-endian; this machine is not", ErrConfig)
	}
	if len(mem) < HeaderSize {
		return fmt.Errorf("%w: area is %d bytes, smaller than the %d-byte header", ErrConfig, len(mem), HeaderSize)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return fmt.Errorf("%w: area is not 8-byte aligned", ErrConfig)
	}
	return nil
}

// Create initialises a new, empty registry in mem (which must be at least
// SizeFor(cfg) bytes and 8-byte aligned; the shm package hands out
// 4096-aligned areas) and returns it. Create zeroes the registry's bytes; no
// other user may touch mem during Create.
func Create(mem []byte, cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("features: create: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := checkMem(mem); err != nil {
		return nil, fmt.Errorf("features: create: %w", err)
	}
	need := SizeFor(cfg)
	if len(mem) < need {
		return nil, fmt.Errorf("features: create: %w: area is %d bytes, config needs %d", ErrConfig, len(mem), need)
	}
	area := mem[:need]
	clear(area)
	tableOff, arenaOff, arenaSize := cfg.layout()
	le := binary.LittleEndian
	le.PutUint64(area[hdrMagic:], Magic)
	le.PutUint32(area[hdrVersion:], Version)
	le.PutUint32(area[hdrHeaderSize:], HeaderSize)
	le.PutUint64(area[hdrTotalSize:], uint64(need))
	le.PutUint32(area[hdrMaxSchemas:], uint32(cfg.MaxSchemas))
	le.PutUint32(area[hdrMaxFields:], MaxFields)
	le.PutUint32(area[hdrMaxKeys:], uint32(cfg.MaxKeys))
	le.PutUint32(area[hdrMaxHistory:], uint32(cfg.MaxHistory))
	le.PutUint32(area[hdrMaxRecord:], uint32(cfg.MaxRecordBytes))
	le.PutUint32(area[hdrSchemaEntrySize:], schemaEntrySize)
	le.PutUint64(area[hdrSchemaTableOff:], tableOff)
	le.PutUint64(area[hdrArenaOff:], arenaOff)
	le.PutUint64(area[hdrArenaSize:], arenaSize)
	r, err := Attach(mem)
	if err != nil {
		return nil, fmt.Errorf("features: create: %w", err)
	}
	return r, nil
}

// Attach opens the registry that Create initialised in mem (possibly in
// another process or by the kernel). mem is untrusted: every header field
// is validated against len(mem), and a corrupt header returns an error
// wrapping ErrCorrupt.
func Attach(mem []byte) (*Registry, error) {
	if err := checkMem(mem); err != nil {
		return nil, fmt.Errorf("features: attach: %w", err)
	}
	le := binary.LittleEndian
	bad := func(format string, a ...any) error {
		return fmt.Errorf("features: attach: %w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	if m := le.Uint64(mem[hdrMagic:]); m != Magic {
		return nil, bad("magic %#x, want %#x", m, Magic)
	}
	if v := le.Uint32(mem[hdrVersion:]); v != Version {
		return nil, bad("version %d, want %d", v, Version)
	}
	if h := le.Uint32(mem[hdrHeaderSize:]); h != HeaderSize {
		return nil, bad("header size %d, want %d", h, HeaderSize)
	}
	total := le.Uint64(mem[hdrTotalSize:])
	if total < HeaderSize || total > uint64(len(mem)) {
		return nil, bad("total size %d outside %d..%d (area length)", total, HeaderSize, len(mem))
	}
	r := &Registry{mem: mem, base: unsafe.Pointer(&mem[0]), size: total}
	lim := func(name string, off int, max uint32) (uint32, error) {
		v := le.Uint32(mem[off:])
		if v < 1 || v > max {
			return 0, bad("%s = %d, want 1..%d", name, v, max)
		}
		return v, nil
	}
	var err error
	if r.maxSchemas, err = lim("max_schemas", hdrMaxSchemas, limitSchemas); err != nil {
		return nil, err
	}
	if f := le.Uint32(mem[hdrMaxFields:]); f != MaxFields {
		return nil, bad("max_fields %d, want %d", f, MaxFields)
	}
	if r.maxKeys, err = lim("max_keys", hdrMaxKeys, limitKeys); err != nil {
		return nil, err
	}
	if r.maxHistory, err = lim("max_history", hdrMaxHistory, limitHistory); err != nil {
		return nil, err
	}
	if r.maxRecord, err = lim("max_record", hdrMaxRecord, limitRecord); err != nil {
		return nil, err
	}
	if e := le.Uint32(mem[hdrSchemaEntrySize:]); e != schemaEntrySize {
		return nil, bad("schema entry size %d, want %d", e, schemaEntrySize)
	}
	r.tableOff = le.Uint64(mem[hdrSchemaTableOff:])
	tableEnd := r.tableOff + uint64(r.maxSchemas)*schemaEntrySize // no overflow: both bounded
	if r.tableOff < HeaderSize || r.tableOff%64 != 0 || r.tableOff > total || tableEnd > total {
		return nil, bad("schema table %d..%d outside header end %d..%d", r.tableOff, tableEnd, HeaderSize, total)
	}
	r.arenaOff = le.Uint64(mem[hdrArenaOff:])
	r.arenaSize = le.Uint64(mem[hdrArenaSize:])
	if r.arenaOff < tableEnd || r.arenaOff%64 != 0 || r.arenaOff > total || r.arenaSize > total-r.arenaOff {
		return nil, bad("arena %d+%d outside table end %d..%d", r.arenaOff, r.arenaSize, tableEnd, total)
	}
	if used := atomic.LoadUint64(r.u64(hdrArenaUsed)); used > r.arenaSize {
		return nil, bad("arena used %d > arena size %d", used, r.arenaSize)
	}
	if n := atomic.LoadUint32(r.u32(hdrSchemaCount)); n > r.maxSchemas {
		return nil, bad("schema count %d > max %d", n, r.maxSchemas)
	}
	r.cache = make([]atomic.Pointer[SchemaInfo], r.maxSchemas)
	return r, nil
}

// Size returns the number of bytes of the area the registry uses.
func (r *Registry) Size() int { return int(r.size) }

// u64 and u32 return pointers into the area. Callers pass offsets that are
// aligned and inside r.size (derived from validated descriptors only).
func (r *Registry) u64(off uint64) *uint64 { return (*uint64)(unsafe.Add(r.base, off)) }
func (r *Registry) u32(off uint64) *uint32 { return (*uint32)(unsafe.Add(r.base, off)) }

// regLockWait is how long Register waits for the header's registration
// lock before checking whether its holder is still alive.
var regLockWait = 2 * time.Second

// lockReg takes the registration lock: the in-process mutex plus the
// header's reg_lock word (0 free, else the holder's pid), which serialises
// registration across processes. Registration is not on any recording or
// reading path. A lock whose holder process no longer exists (it died while
// registering) is taken over after regLockWait.
func (r *Registry) lockReg() error {
	r.regMu.Lock()
	w := r.u32(hdrRegLock)
	self := uint32(os.Getpid())
	deadline := time.Now().Add(regLockWait)
	for i := 0; ; i++ {
		if atomic.CompareAndSwapUint32(w, 0, self) {
			return nil
		}
		if i%64 == 63 && time.Now().After(deadline) {
			owner := atomic.LoadUint32(w)
			if owner != 0 && owner != self && !processAlive(int(owner)) && atomic.CompareAndSwapUint32(w, owner, self) {
				return nil
			}
			r.regMu.Unlock()
			return fmt.Errorf("%w: registration lock held by pid %d for more than %v", ErrBusy, owner, regLockWait)
		}
		runtime.Gosched()
	}
}

func (r *Registry) unlockReg() {
	atomic.StoreUint32(r.u32(hdrRegLock), 0)
	r.regMu.Unlock()
}

// Register adds a schema and returns its id. It fails with ErrSchema for an
// invalid definition, ErrSchemaExists for a taken name and ErrNoSpace when
// the schema exceeds a Config limit or does not fit in the arena.
func (r *Registry) Register(s Schema) (SchemaID, error) {
	fail := func(err error) (SchemaID, error) {
		return 0, fmt.Errorf("features: register %q: %w", s.Name, err)
	}
	if err := checkName(s.Name, MaxNameLen); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrSchema, err))
	}
	fields, recSize, err := layoutFields(s.Fields)
	if err != nil {
		return fail(err)
	}
	if recSize > int(r.maxRecord) {
		return fail(fmt.Errorf("%w: record is %d bytes, registry allows %d", ErrNoSpace, recSize, r.maxRecord))
	}
	if s.History < 1 {
		return fail(fmt.Errorf("%w: history %d, want >= 1", ErrSchema, s.History))
	}
	if s.History > int(r.maxHistory) {
		return fail(fmt.Errorf("%w: history %d, registry allows %d", ErrNoSpace, s.History, r.maxHistory))
	}
	if s.MaxKeys < 1 {
		return fail(fmt.Errorf("%w: max keys %d, want >= 1", ErrSchema, s.MaxKeys))
	}
	if s.MaxKeys > int(r.maxKeys) {
		return fail(fmt.Errorf("%w: max keys %d, registry allows %d", ErrNoSpace, s.MaxKeys, r.maxKeys))
	}
	ringLen := nextPow2(uint64(s.History))
	table := tableSizeFor(uint64(s.MaxKeys))
	stride := uint64(recHdrSize + recSize)
	tableBytes := table * keySlotSize
	need := alignUp(tableBytes+table*ringLen*stride, 64)

	if err := r.lockReg(); err != nil {
		return fail(err)
	}
	defer r.unlockReg()
	count := atomic.LoadUint32(r.u32(hdrSchemaCount))
	if count > r.maxSchemas {
		return fail(fmt.Errorf("%w: schema count %d > max %d", ErrCorrupt, count, r.maxSchemas))
	}
	for i := uint32(0); i < count; i++ {
		if r.entryName(i) == s.Name {
			return fail(fmt.Errorf("%w: id %d", ErrSchemaExists, i))
		}
	}
	if count == r.maxSchemas {
		return fail(fmt.Errorf("%w: all %d schema entries in use", ErrNoSpace, r.maxSchemas))
	}
	used := atomic.LoadUint64(r.u64(hdrArenaUsed))
	if used > r.arenaSize || need > r.arenaSize-used {
		return fail(fmt.Errorf("%w: needs %d arena bytes, %d of %d free", ErrNoSpace, need, r.arenaSize-min(used, r.arenaSize), r.arenaSize))
	}
	off := r.arenaOff + used
	clear(r.mem[off : off+need])

	e := r.tableOff + uint64(count)*schemaEntrySize
	ent := r.mem[e : e+schemaEntrySize]
	clear(ent[schID:]) // state word stays free until published
	le := binary.LittleEndian
	le.PutUint32(ent[schID:], count)
	copy(ent[schName:schName+MaxNameLen], s.Name)
	le.PutUint32(ent[schNFields:], uint32(len(fields)))
	le.PutUint32(ent[schHistory:], uint32(s.History))
	le.PutUint32(ent[schRingLen:], uint32(ringLen))
	le.PutUint32(ent[schRecordSize:], uint32(recSize))
	le.PutUint32(ent[schRecordStride:], uint32(stride))
	le.PutUint32(ent[schKeyCapacity:], uint32(s.MaxKeys))
	le.PutUint32(ent[schTableSize:], uint32(table))
	le.PutUint64(ent[schKeyTableOff:], off)
	le.PutUint64(ent[schRingOff:], off+tableBytes)
	for i, f := range fields {
		fd := ent[schFields+i*fieldDescSize:]
		copy(fd[fdName:fdName+MaxFieldNameLen], f.Name)
		fd[fdType] = byte(f.Type)
		le.PutUint16(fd[fdCount:], uint16(f.Count))
		le.PutUint32(fd[fdOffset:], uint32(f.Offset))
	}
	atomic.StoreUint64(r.u64(hdrArenaUsed), used+need)
	atomic.StoreUint32(r.u32(e+schState), schemaStateReady)
	atomic.StoreUint32(r.u32(hdrSchemaCount), count+1)
	return SchemaID(count), nil
}

// entryName returns the name stored in schema entry i (for duplicate checks;
// i < maxSchemas).
func (r *Registry) entryName(i uint32) string {
	e := r.tableOff + uint64(i)*schemaEntrySize + schName
	n := r.mem[e : e+MaxNameLen]
	if j := bytes.IndexByte(n, 0); j >= 0 {
		n = n[:j]
	}
	return string(n)
}

// schema returns the validated description of schema id.
func (r *Registry) schema(id SchemaID) (*SchemaInfo, error) {
	if uint64(id) >= uint64(len(r.cache)) {
		return nil, fmt.Errorf("%w: id %d (registry has %d entries)", ErrUnknownSchema, id, len(r.cache))
	}
	if s := r.cache[id].Load(); s != nil {
		return s, nil
	}
	e := r.tableOff + uint64(id)*schemaEntrySize
	if atomic.LoadUint32(r.u32(e+schState)) != schemaStateReady {
		return nil, fmt.Errorf("%w: id %d", ErrUnknownSchema, id)
	}
	s, err := r.parseSchema(uint32(id))
	if err != nil {
		return nil, err
	}
	r.cache[id].Store(s)
	return s, nil
}

// parseSchema decodes and validates schema entry i; the entry is untrusted.
func (r *Registry) parseSchema(i uint32) (*SchemaInfo, error) {
	e := r.tableOff + uint64(i)*schemaEntrySize
	ent := r.mem[e : e+schemaEntrySize]
	le := binary.LittleEndian
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: schema entry %d: %s", ErrCorrupt, i, fmt.Sprintf(format, a...))
	}
	if id := le.Uint32(ent[schID:]); id != i {
		return nil, bad("id %d", id)
	}
	s := &SchemaInfo{id: SchemaID(i), entryOff: e, name: r.entryName(i)}
	if err := checkName(s.name, MaxNameLen); err != nil {
		return nil, bad("%v", err)
	}
	recSize := le.Uint32(ent[schRecordSize:])
	if recSize == 0 || recSize%8 != 0 || recSize > r.maxRecord {
		return nil, bad("record size %d", recSize)
	}
	s.recordSize = int(recSize)
	if st := le.Uint32(ent[schRecordStride:]); st != recHdrSize+recSize {
		return nil, bad("record stride %d, want %d", st, recHdrSize+recSize)
	}
	s.stride = uint64(recHdrSize + recSize)
	nf := le.Uint32(ent[schNFields:])
	if nf < 1 || nf > MaxFields {
		return nil, bad("%d fields", nf)
	}
	for j := uint32(0); j < nf; j++ {
		fd := ent[schFields+j*fieldDescSize : schFields+(j+1)*fieldDescSize]
		name := fd[fdName : fdName+MaxFieldNameLen]
		if k := bytes.IndexByte(name, 0); k >= 0 {
			name = name[:k]
		}
		f := FieldInfo{Name: string(name), Type: FieldType(fd[fdType]), Count: int(le.Uint16(fd[fdCount:])), Offset: int(le.Uint32(fd[fdOffset:]))}
		if err := checkName(f.Name, MaxFieldNameLen); err != nil {
			return nil, bad("field %d: %v", j, err)
		}
		sz := f.Type.Size()
		if sz == 0 || f.Count < 1 || f.Offset%sz != 0 || uint64(f.Offset)+uint64(sz*f.Count) > uint64(recSize) {
			return nil, bad("field %q: type %d count %d offset %d in %d-byte record", f.Name, fd[fdType], f.Count, f.Offset, recSize)
		}
		s.fields = append(s.fields, f)
	}
	hist := le.Uint32(ent[schHistory:])
	if hist < 1 || hist > r.maxHistory {
		return nil, bad("history %d", hist)
	}
	s.history = int(hist)
	ring := uint64(le.Uint32(ent[schRingLen:]))
	if ring < uint64(hist) || ring&(ring-1) != 0 || ring > nextPow2(uint64(r.maxHistory)) {
		return nil, bad("ring length %d for history %d", ring, hist)
	}
	s.ringLen = ring
	s.keyCap = le.Uint32(ent[schKeyCapacity:])
	if s.keyCap < 1 || s.keyCap > r.maxKeys {
		return nil, bad("key capacity %d", s.keyCap)
	}
	table := uint64(le.Uint32(ent[schTableSize:]))
	if table < uint64(s.keyCap) || table&(table-1) != 0 || table > 2*nextPow2(uint64(r.maxKeys)) {
		return nil, bad("table size %d for capacity %d", table, s.keyCap)
	}
	s.tableSize = table
	arenaEnd := r.arenaOff + r.arenaSize
	s.tableOff = le.Uint64(ent[schKeyTableOff:])
	if s.tableOff%64 != 0 || s.tableOff < r.arenaOff || s.tableOff > arenaEnd || table*keySlotSize > arenaEnd-s.tableOff {
		return nil, bad("key table at %d (%d slots) outside arena %d..%d", s.tableOff, table, r.arenaOff, arenaEnd)
	}
	s.ringOff = le.Uint64(ent[schRingOff:])
	ringBytes := table * ring * s.stride // <= 2^24 * 2^20 * (2^16+16): fits in u64
	if s.ringOff%8 != 0 || s.ringOff < r.arenaOff || s.ringOff > arenaEnd || ringBytes > arenaEnd-s.ringOff {
		return nil, bad("rings at %d (%d bytes) outside arena %d..%d", s.ringOff, ringBytes, r.arenaOff, arenaEnd)
	}
	return s, nil
}

// Schema returns the description of a registered schema.
func (r *Registry) Schema(id SchemaID) (*SchemaInfo, error) {
	s, err := r.schema(id)
	if err != nil {
		return nil, fmt.Errorf("features: schema: %w", err)
	}
	return s, nil
}

// Lookup returns the id of the schema with the given name.
func (r *Registry) Lookup(name string) (SchemaID, error) {
	n := min(atomic.LoadUint32(r.u32(hdrSchemaCount)), r.maxSchemas)
	for i := uint32(0); i < n; i++ {
		if r.entryName(i) == name {
			if _, err := r.schema(SchemaID(i)); err != nil {
				return 0, fmt.Errorf("features: lookup %q: %w", name, err)
			}
			return SchemaID(i), nil
		}
	}
	return 0, fmt.Errorf("features: lookup %q: %w", name, ErrUnknownSchema)
}

// Schemas lists the registered schemas in id order. A corrupt entry is
// reported as an error (the entries before it are returned too).
func (r *Registry) Schemas() ([]*SchemaInfo, error) {
	n := min(atomic.LoadUint32(r.u32(hdrSchemaCount)), r.maxSchemas)
	out := make([]*SchemaInfo, 0, n)
	for i := uint32(0); i < n; i++ {
		s, err := r.schema(SchemaID(i))
		if err != nil {
			return out, fmt.Errorf("features: schemas: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}
