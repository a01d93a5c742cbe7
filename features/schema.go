package features

import (
	"encoding/binary"
	"fmt"
	"math"
)

// FieldType is the element type of a schema field.
type FieldType uint8

// Field types. The numeric values are part of the layout (shm/PROTOCOL.md).
const (
	U8  FieldType = 1
	U16 FieldType = 2
	U32 FieldType = 3
	U64 FieldType = 4
	I32 FieldType = 5
	I64 FieldType = 6
	F32 FieldType = 7
	F64 FieldType = 8
)

// Size returns the size in bytes of one element, or 0 for an invalid type.
func (t FieldType) Size() int {
	switch t {
	case U8:
		return 1
	case U16:
		return 2
	case U32, I32, F32:
		return 4
	case U64, I64, F64:
		return 8
	}
	return 0
}

// String returns the type's name ("u8", "f64", ...).
func (t FieldType) String() string {
	switch t {
	case U8:
		return "u8"
	case U16:
		return "u16"
	case U32:
		return "u32"
	case U64:
		return "u64"
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	}
	return fmt.Sprintf("FieldType(%d)", uint8(t))
}

// Field declares one field of a schema: Count elements of Type.
type Field struct {
	Name  string
	Type  FieldType
	Count int // width (array count); 0 means 1
}

// Schema declares a feature schema.
type Schema struct {
	// Name identifies the schema (1..MaxNameLen bytes, unique).
	Name string
	// Fields of each record, laid out in order, each aligned to its element
	// size; the payload is padded to a multiple of 8 bytes.
	Fields []Field
	// History is the number of samples kept per key (the longest window).
	History int
	// MaxKeys is the number of keys the schema can hold at once.
	MaxKeys int
}

// SchemaID identifies a registered schema inside one registry.
type SchemaID uint32

// FieldInfo describes a registered field.
type FieldInfo struct {
	Name   string
	Type   FieldType
	Count  int
	Offset int // byte offset inside the payload
}

// SchemaInfo is the validated, immutable description of a registered
// schema. Its methods encode and decode record payloads.
type SchemaInfo struct {
	id         SchemaID
	name       string
	fields     []FieldInfo
	history    int
	ringLen    uint64
	recordSize int
	stride     uint64
	keyCap     uint32
	tableSize  uint64
	tableOff   uint64
	ringOff    uint64
	entryOff   uint64
}

// ID returns the schema id.
func (s *SchemaInfo) ID() SchemaID { return s.id }

// Name returns the schema name.
func (s *SchemaInfo) Name() string { return s.name }

// Fields returns a copy of the field descriptions.
func (s *SchemaInfo) Fields() []FieldInfo { return append([]FieldInfo(nil), s.fields...) }

// History returns the declared history length (longest window).
func (s *SchemaInfo) History() int { return s.history }

// MaxKeys returns the key capacity.
func (s *SchemaInfo) MaxKeys() int { return int(s.keyCap) }

// RecordSize returns the payload size in bytes of one record.
func (s *SchemaInfo) RecordSize() int { return s.recordSize }

// FieldIndex returns the index of the named field, or -1.
func (s *SchemaInfo) FieldIndex(name string) int {
	for i, f := range s.fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// NewRecord returns a zeroed payload of RecordSize bytes.
func (s *SchemaInfo) NewRecord() []byte { return make([]byte, s.recordSize) }

func (s *SchemaInfo) elem(rec []byte, field, elem int) (FieldInfo, int, error) {
	if len(rec) != s.recordSize {
		return FieldInfo{}, 0, fmt.Errorf("%w: schema %q: record is %d bytes, want %d", ErrWidth, s.name, len(rec), s.recordSize)
	}
	if field < 0 || field >= len(s.fields) {
		return FieldInfo{}, 0, fmt.Errorf("%w: schema %q: field %d out of range (has %d)", ErrWidth, s.name, field, len(s.fields))
	}
	f := s.fields[field]
	if elem < 0 || elem >= f.Count {
		return FieldInfo{}, 0, fmt.Errorf("%w: schema %q field %q: element %d out of width %d", ErrWidth, s.name, f.Name, elem, f.Count)
	}
	return f, f.Offset + elem*f.Type.Size(), nil
}

// SetUint stores v into element elem of field in rec. It fails with ErrWidth
// if the field is signed/float-incompatible or v does not fit its type.
func (s *SchemaInfo) SetUint(rec []byte, field, elem int, v uint64) error {
	f, off, err := s.elem(rec, field, elem)
	if err != nil {
		return err
	}
	switch f.Type {
	case I32, I64:
		if v > math.MaxInt64 {
			return fmt.Errorf("%w: field %q: %d overflows %s", ErrWidth, f.Name, v, f.Type)
		}
		return s.SetInt(rec, field, elem, int64(v))
	case F32, F64:
		return s.SetFloat(rec, field, elem, float64(v))
	}
	max := uint64(math.MaxUint64) >> (64 - 8*f.Type.Size())
	if v > max {
		return fmt.Errorf("%w: field %q: %d overflows %s", ErrWidth, f.Name, v, f.Type)
	}
	putUint(rec[off:], f.Type.Size(), v)
	return nil
}

// SetInt stores v into element elem of field in rec, checking the range of
// the field's type.
func (s *SchemaInfo) SetInt(rec []byte, field, elem int, v int64) error {
	f, off, err := s.elem(rec, field, elem)
	if err != nil {
		return err
	}
	switch f.Type {
	case I32:
		if v < math.MinInt32 || v > math.MaxInt32 {
			return fmt.Errorf("%w: field %q: %d overflows i32", ErrWidth, f.Name, v)
		}
		binary.LittleEndian.PutUint32(rec[off:], uint32(int32(v)))
	case I64:
		binary.LittleEndian.PutUint64(rec[off:], uint64(v))
	case F32, F64:
		return s.SetFloat(rec, field, elem, float64(v))
	default:
		if v < 0 {
			return fmt.Errorf("%w: field %q: %d is negative for %s", ErrWidth, f.Name, v, f.Type)
		}
		return s.SetUint(rec, field, elem, uint64(v))
	}
	return nil
}

// SetFloat stores v into element elem of a float field (f32 or f64).
func (s *SchemaInfo) SetFloat(rec []byte, field, elem int, v float64) error {
	f, off, err := s.elem(rec, field, elem)
	if err != nil {
		return err
	}
	switch f.Type {
	case F32:
		binary.LittleEndian.PutUint32(rec[off:], math.Float32bits(float32(v)))
	case F64:
		binary.LittleEndian.PutUint64(rec[off:], math.Float64bits(v))
	default:
		return fmt.Errorf("%w: field %q is %s, not a float", ErrWidth, f.Name, f.Type)
	}
	return nil
}

// Int returns element elem of field in rec converted to int64 (unsigned
// values above MaxInt64 saturate, floats are truncated toward zero and
// saturate, NaN reads as 0).
func (s *SchemaInfo) Int(rec []byte, field, elem int) (int64, error) {
	f, off, err := s.elem(rec, field, elem)
	if err != nil {
		return 0, err
	}
	return decodeInt(rec[off:], f.Type), nil
}

// Float returns element elem of field in rec converted to float64.
func (s *SchemaInfo) Float(rec []byte, field, elem int) (float64, error) {
	f, off, err := s.elem(rec, field, elem)
	if err != nil {
		return 0, err
	}
	b := rec[off:]
	switch f.Type {
	case F32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	case F64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	case I32, I64:
		return float64(decodeInt(b, f.Type)), nil
	}
	return float64(getUint(b, f.Type.Size())), nil
}

func putUint(b []byte, size int, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

func getUint(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	}
	return binary.LittleEndian.Uint64(b)
}

func floatToInt(f float64) int64 {
	switch {
	case f != f:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

func decodeInt(b []byte, t FieldType) int64 {
	switch t {
	case I32:
		return int64(int32(binary.LittleEndian.Uint32(b)))
	case I64:
		return int64(binary.LittleEndian.Uint64(b))
	case F32:
		return floatToInt(float64(math.Float32frombits(binary.LittleEndian.Uint32(b))))
	case F64:
		return floatToInt(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	}
	v := getUint(b, t.Size())
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// layoutFields validates field declarations and assigns offsets; it returns
// the field infos and the payload size (a multiple of 8).
func layoutFields(fields []Field) ([]FieldInfo, int, error) {
	if len(fields) == 0 || len(fields) > MaxFields {
		return nil, 0, fmt.Errorf("%w: %d fields, want 1..%d", ErrSchema, len(fields), MaxFields)
	}
	out := make([]FieldInfo, len(fields))
	off := 0
	for i, f := range fields {
		if err := checkName(f.Name, MaxFieldNameLen); err != nil {
			return nil, 0, fmt.Errorf("%w: field %d: %v", ErrSchema, i, err)
		}
		for j := 0; j < i; j++ {
			if fields[j].Name == f.Name {
				return nil, 0, fmt.Errorf("%w: duplicate field name %q", ErrSchema, f.Name)
			}
		}
		sz := f.Type.Size()
		if sz == 0 {
			return nil, 0, fmt.Errorf("%w: field %q: unknown type %d", ErrSchema, f.Name, uint8(f.Type))
		}
		cnt := f.Count
		if cnt == 0 {
			cnt = 1
		}
		if cnt < 0 || cnt > math.MaxUint16 {
			return nil, 0, fmt.Errorf("%w: field %q: width %d, want 1..%d", ErrSchema, f.Name, f.Count, math.MaxUint16)
		}
		off = int(alignUp(uint64(off), uint64(sz)))
		out[i] = FieldInfo{Name: f.Name, Type: f.Type, Count: cnt, Offset: off}
		off += sz * cnt
		if off > limitRecord {
			return nil, 0, fmt.Errorf("%w: record larger than %d bytes", ErrNoSpace, limitRecord)
		}
	}
	return out, int(alignUp(uint64(off), 8)), nil
}

func checkName(name string, max int) error {
	if len(name) == 0 || len(name) > max {
		return fmt.Errorf("name %q: length %d, want 1..%d", name, len(name), max)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("name %q: byte %d is not printable ASCII", name, i)
		}
	}
	return nil
}
