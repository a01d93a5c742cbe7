package features

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LinnOS feature schemas and vector.
//
// The LinnOS input vector has LinnOSInputs = 31 int32 values, each a
// decimal digit, most significant digit first, oldest history first:
//
//	[0:3)   pending I/O count of the device now (the I/O being predicted),
//	        clamped to 999
//	[3:15)  pending counts at the device's last 4 arrivals (oldest first),
//	        3 digits each, clamped to 999
//	[15:31) latencies in µs of the device's last 4 completed I/Os (oldest
//	        first), 4 digits each, clamped to 9999
//
// History a device does not have yet reads as 0. Call Features with the
// current pending count first, then RecordArrival with the same count, so
// that the current arrival becomes history for the next prediction.
const (
	LinnOSArrivalSchema    = "linnos.arrival"    // schema of arrivals: pending u32
	LinnOSCompletionSchema = "linnos.completion" // schema of completions: latency_us u32
	LinnOSInputs           = 31                  // length of the LinnOS input vector
	// LinnOSHistory is the history kept per device in each LinnOS schema
	// (more than the 4 the vector uses, so that concurrent recorders of one
	// device rarely lose a sample to ring wrap-around).
	LinnOSHistory = 16
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
	comp, err := ensureSchema(r, Schema{Name: LinnOSCompletionSchema, Fields: []Field{{Name: "latency_us", Type: U32}}, History: LinnOSHistory, MaxKeys: maxDevices})
	if err != nil {
		return nil, fmt.Errorf("features: linnos: %w", err)
	}
	items := []VectorItem{{FromInput: true, Input: 0, Digits: 3}}
	for age := 3; age >= 0; age-- {
		items = append(items, VectorItem{Schema: arr, Field: "pending", Age: age, Digits: 3})
	}
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
	if len(f) != len(s.Fields) || f[0].Name != s.Fields[0].Name || f[0].Type != s.Fields[0].Type || f[0].Count != 1 || info.history < 4 {
		return 0, fmt.Errorf("%w: existing schema %q has an incompatible layout", ErrSchema, s.Name)
	}
	return id, nil
}

// Arrivals returns the id of the arrival schema (field "pending", u32).
func (l *LinnOS) Arrivals() SchemaID { return l.arrivals }

// Completions returns the id of the completion schema (field "latency_us",
// u32).
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

// RecordCompletion records the latency in µs of an I/O of dev that
// completed.
func (l *LinnOS) RecordCompletion(dev uint64, latencyUs uint32) error {
	return l.record(l.completions, dev, latencyUs)
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
	buf       [8]byte
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
	binary.LittleEndian.PutUint32(d.buf[:], v)
	return w.Record(d.buf[:])
}

// RecordArrival records the pending I/O count when an I/O arrived.
func (d *LinnOSDevice) RecordArrival(pending uint32) error { return d.record(d.arr, pending) }

// RecordCompletion records the latency in µs of an I/O that completed.
func (d *LinnOSDevice) RecordCompletion(latencyUs uint32) error {
	return d.record(d.comp, latencyUs)
}

// Close gives both keys back to shared writers; their history stays.
func (d *LinnOSDevice) Close() error { return errors.Join(d.arr.Close(), d.comp.Close()) }

// Drop removes both keys and their history.
func (d *LinnOSDevice) Drop() error { return errors.Join(d.arr.Drop(), d.comp.Drop()) }
