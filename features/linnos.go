package features

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LinnOS feature schemas and vector.
//
// The LinnOS input vector has LinnOSInputs = 31 int32 values, each a
// decimal digit, most significant digit first, in the layout of LinnOS and
// LAKE (linnos/features.go, linnos.Extractor): the history is the device's
// last 4 completed reads, oldest first, from linnos.completion records:
//
//	[0:12)  pending count at each history read's arrival, 3 digits each,
//	        clamped to 999
//	[12:15) pending count of the device now (the read being predicted,
//	        itself included), clamped to 999
//	[15:31) latency in µs of each history read, 4 digits each, clamped to
//	        9999
//
// History a device does not have yet reads as 0. Producers record every
// completed read (reads only: writes count in the pending number, not in
// the history) with RecordCompletion; linnos.arrival records each read's
// pending count at arrival, for observers (the vector does not use it).
//
// A completion record (LinnOSCompletion, 24 bytes) also carries two
// per-device counters that let a trainer rebuild, for every read, exactly
// the vector it was predicted with: done_seq is the read's completion
// ordinal on its device (1, 2, ...) and arrive_seq the done_seq of the
// last read that had completed when this one arrived (0: none yet). The
// read's history is then the reads with done_seq in
// (arrive_seq-4, arrive_seq]. A producer that does not count writes 0 in
// both (done_seq 0: not counted). stale says how many of those, oldest
// first, had outlived the producer's history time-to-live at the read's
// arrival and were read as zeros (the kernel's lake_linnos_hist_stale;
// linnos.Extractor.Expire); 0 for producers without one.
const (
	LinnOSArrivalSchema    = "linnos.arrival"    // schema of arrivals: pending u32
	LinnOSCompletionSchema = "linnos.completion" // schema of read completions: LinnOSCompletion
	LinnOSInputs           = 31                  // length of the LinnOS input vector
	// LinnOSHistory is the history kept per device in each LinnOS schema
	// (more than the 4 the vector uses, so that concurrent recorders of one
	// device rarely lose a sample to ring wrap-around).
	LinnOSHistory = 16
	// LinnOSCompletionHistory is the history of the completion schema: a
	// trainer draining it (linnos/retrain) gets every read of a device
	// whose completions it drains at least every 32 reads, and runs of 32
	// consecutive reads (most of them with their history) otherwise.
	LinnOSCompletionHistory = 32
)

// LinnOS records LinnOS features through a Registry and builds the LinnOS
// input vector. Keys are device numbers. It is safe for concurrent use.
type LinnOS struct {
	r           *Registry
	arrivals    SchemaID
	completions SchemaID
	vec         *Vector
}

// NewLinnOS registers the LinnOS schemas in r (or attaches to them if an
// earlier NewLinnOS, maybe in another process, registered them) for up to
// maxDevices devices.
func NewLinnOS(r *Registry, maxDevices int) (*LinnOS, error) {
	arr, err := ensureSchema(r, Schema{Name: LinnOSArrivalSchema, Fields: []Field{{Name: "pending", Type: U32}}, History: LinnOSHistory, MaxKeys: maxDevices})
	if err != nil {
		return nil, fmt.Errorf("features: linnos: %w", err)
	}
	comp, err := ensureSchema(r, Schema{Name: LinnOSCompletionSchema, Fields: linnosCompletionFields, History: LinnOSCompletionHistory, MaxKeys: maxDevices})
	if err != nil {
		return nil, fmt.Errorf("features: linnos: %w", err)
	}
	var items []VectorItem
	for age := 3; age >= 0; age-- {
		items = append(items, VectorItem{Schema: comp, Field: "pending", Age: age, Digits: 3})
	}
	items = append(items, VectorItem{FromInput: true, Input: 0, Digits: 3})
	for age := 3; age >= 0; age-- {
		items = append(items, VectorItem{Schema: comp, Field: "latency_us", Age: age, Digits: 4})
	}
	vec, err := r.CompileVector(items)
	if err != nil {
		return nil, fmt.Errorf("features: linnos: %w", err)
	}
	if vec.Len() != LinnOSInputs {
		return nil, fmt.Errorf("features: linnos: vector has %d inputs, want %d", vec.Len(), LinnOSInputs)
	}
	return &LinnOS{r: r, arrivals: arr, completions: comp, vec: vec}, nil
}

// ensureSchema registers s, or returns the id of an existing schema with the
// same name after checking that it is compatible.
func ensureSchema(r *Registry, s Schema) (SchemaID, error) {
	id, err := r.Register(s)
	if err == nil || !errors.Is(err, ErrSchemaExists) {
		return id, err
	}
	id, err = r.Lookup(s.Name)
	if err != nil {
		return 0, err
	}
	info, err := r.schema(id)
	if err != nil {
		return 0, err
	}
	f := info.fields
	bad := len(f) != len(s.Fields) || info.history < 4
	for i := 0; !bad && i < len(f); i++ {
		bad = f[i].Name != s.Fields[i].Name || f[i].Type != s.Fields[i].Type || f[i].Count != 1
	}
	if bad {
		return 0, fmt.Errorf("%w: existing schema %q has an incompatible layout", ErrSchema, s.Name)
	}
	return id, nil
}

// linnosCompletionFields is the layout of a linnos.completion record:
// five u32 at offsets 0, 4, 8, 12, 16 (24 bytes with the padding).
var linnosCompletionFields = []Field{
	{Name: "latency_us", Type: U32}, {Name: "pending", Type: U32},
	{Name: "arrive_seq", Type: U32}, {Name: "done_seq", Type: U32},
	{Name: "stale", Type: U32},
}

// LinnOSCompletion is one completed read of a device (a linnos.completion
// record; see the top of this file for the counters).
type LinnOSCompletion struct {
	LatencyUs uint32 // the read's latency in µs
	Pending   uint32 // the device's pending count at the read's arrival, itself included
	ArriveSeq uint32 // DoneSeq of the last read completed before this one arrived (0: none)
	DoneSeq   uint32 // this read's completion ordinal on the device, from 1 (0: not counted)
	Stale     uint32 // oldest history entries past the producer's time-to-live at arrival, read as zeros (0..4)
}

// LinnOSCompletionBytes is the size of an encoded LinnOSCompletion (five
// u32 and 4 bytes of zero padding: records are multiples of 8 bytes).
const LinnOSCompletionBytes = 24

// Encode writes c into b[:24], little-endian, in field order, then zeros.
func (c LinnOSCompletion) Encode(b []byte) {
	_ = b[LinnOSCompletionBytes-1]
	binary.LittleEndian.PutUint32(b[0:], c.LatencyUs)
	binary.LittleEndian.PutUint32(b[4:], c.Pending)
	binary.LittleEndian.PutUint32(b[8:], c.ArriveSeq)
	binary.LittleEndian.PutUint32(b[12:], c.DoneSeq)
	binary.LittleEndian.PutUint32(b[16:], c.Stale)
	binary.LittleEndian.PutUint32(b[20:], 0)
}

// DecodeLinnOSCompletion reads a record written by Encode (or by a kernel
// producer); b must hold at least 24 bytes. Any bit pattern decodes: the
// values are the producer's, and a consumer checks them.
func DecodeLinnOSCompletion(b []byte) (LinnOSCompletion, error) {
	if len(b) < LinnOSCompletionBytes {
		return LinnOSCompletion{}, fmt.Errorf("%w: linnos completion record of %d bytes, want %d", ErrWidth, len(b), LinnOSCompletionBytes)
	}
	le := binary.LittleEndian
	return LinnOSCompletion{LatencyUs: le.Uint32(b[0:]), Pending: le.Uint32(b[4:]), ArriveSeq: le.Uint32(b[8:]),
		DoneSeq: le.Uint32(b[12:]), Stale: le.Uint32(b[16:])}, nil
}

// Arrivals returns the id of the arrival schema (field "pending", u32).
func (l *LinnOS) Arrivals() SchemaID { return l.arrivals }

// Completions returns the id of the completion schema (LinnOSCompletion
// records).
func (l *LinnOS) Completions() SchemaID { return l.completions }

func (l *LinnOS) record(id SchemaID, dev uint64, v uint32) error {
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return l.r.Record(id, dev, b[:])
}

// RecordArrival records the pending I/O count of dev when an I/O arrived.
func (l *LinnOS) RecordArrival(dev uint64, pending uint32) error {
	return l.record(l.arrivals, dev, pending)
}

// RecordCompletion records a completed read of dev.
func (l *LinnOS) RecordCompletion(dev uint64, c LinnOSCompletion) error {
	var b [LinnOSCompletionBytes]byte
	c.Encode(b[:])
	return l.r.Record(l.completions, dev, b[:])
}

// Features appends the 31 LinnOS inputs for an I/O arriving at dev with
// pending I/Os outstanding to dst[:0] and returns them.
func (l *LinnOS) Features(dev uint64, pending uint32, dst []int32) ([]int32, error) {
	in := [1]int64{int64(pending)}
	out, err := l.vec.Build(dev, in[:], dst)
	if err != nil {
		return dst, fmt.Errorf("features: linnos features: %w", err)
	}
	return out, nil
}

// LinnOSDevice records one device's LinnOS samples as the owner of its
// arrival and completion keys (Registry.Own): the fast way for a producer
// that is the device's only recorder, such as a replay loop or a per-device
// completion handler. Not safe for concurrent use.
type LinnOSDevice struct {
	arr, comp *Writer
	buf       [LinnOSCompletionBytes]byte
}

// Own returns a LinnOSDevice owning dev's two keys.
func (l *LinnOS) Own(dev uint64) (*LinnOSDevice, error) {
	arr, err := l.r.Own(l.arrivals, dev)
	if err != nil {
		return nil, fmt.Errorf("features: linnos own arrivals of %#x: %w", dev, err)
	}
	comp, err := l.r.Own(l.completions, dev)
	if err != nil {
		_ = arr.Close()
		return nil, fmt.Errorf("features: linnos own completions of %#x: %w", dev, err)
	}
	return &LinnOSDevice{arr: arr, comp: comp}, nil
}

func (d *LinnOSDevice) record(w *Writer, v uint32) error {
	clear(d.buf[:])
	binary.LittleEndian.PutUint32(d.buf[:], v)
	return w.Record(d.buf[:8])
}

// RecordArrival records the pending I/O count when an I/O arrived.
func (d *LinnOSDevice) RecordArrival(pending uint32) error { return d.record(d.arr, pending) }

// RecordCompletion records a completed read.
func (d *LinnOSDevice) RecordCompletion(c LinnOSCompletion) error {
	c.Encode(d.buf[:])
	return d.comp.Record(d.buf[:])
}

// Close gives both keys back to shared writers; their history stays.
func (d *LinnOSDevice) Close() error { return errors.Join(d.arr.Close(), d.comp.Close()) }

// Drop removes both keys and their history.
func (d *LinnOSDevice) Drop() error { return errors.Join(d.arr.Drop(), d.comp.Drop()) }
