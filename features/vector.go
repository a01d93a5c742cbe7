package features

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// VectorItem places one value into a model input vector: either a field
// element of a past sample of the key, or a caller-supplied input.
type VectorItem struct {
	// FromInput selects inputs[Input] of Vector.Build instead of a recorded
	// sample.
	FromInput bool
	// Input indexes Build's inputs when FromInput is set.
	Input int
	// Schema, Field and Elem select the recorded value.
	Schema SchemaID
	Field  string
	Elem   int
	// Age selects the sample: 0 is the key's latest sample, 1 the one
	// before, and so on (< the schema's History). A sample the key does not
	// have (yet) reads as 0.
	Age int
	// Digits > 0 expands the value into that many decimal digits, most
	// significant first, after clamping it to 0..10^Digits-1 (LinnOS
	// style); Digits = 0 emits the value clamped to the int32 range.
	Digits int
}

// Vector is a compiled vector spec: it builds a []int32 input vector for a
// key from the registry. It is immutable and safe for concurrent use.
type Vector struct {
	r      *Registry
	items  []vecItem
	groups []vecGroup
	outLen int
	inputs int
	pool   sync.Pool // of *[]Window, one per group
}

type vecItem struct {
	VectorItem
	group int // index in groups; -1 for inputs
	field int
}

type vecGroup struct {
	s *SchemaInfo
	n int // window length needed: max age + 1
}

// maxDigits keeps digit expansion inside int32 arithmetic (10^9-1 fits).
const maxDigits = 9

// CompileVector validates items against the registered schemas and returns
// the compiled Vector.
func (r *Registry) CompileVector(items []VectorItem) (*Vector, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("features: compile vector: %w: no items", ErrWindow)
	}
	v := &Vector{r: r}
	groupOf := map[SchemaID]int{}
	for i, it := range items {
		bad := func(err error, format string, a ...any) (*Vector, error) {
			return nil, fmt.Errorf("features: compile vector: item %d: %w: %s", i, err, fmt.Sprintf(format, a...))
		}
		if it.Digits < 0 || it.Digits > maxDigits {
			return bad(ErrWidth, "digits %d, want 0..%d", it.Digits, maxDigits)
		}
		vi := vecItem{VectorItem: it, group: -1}
		if it.FromInput {
			if it.Input < 0 {
				return bad(ErrWidth, "input index %d", it.Input)
			}
			v.inputs = max(v.inputs, it.Input+1)
		} else {
			s, err := r.schema(it.Schema)
			if err != nil {
				return bad(err, "schema %d", it.Schema)
			}
			vi.field = s.FieldIndex(it.Field)
			if vi.field < 0 {
				return bad(ErrWidth, "schema %q has no field %q", s.name, it.Field)
			}
			if f := s.fields[vi.field]; it.Elem < 0 || it.Elem >= f.Count {
				return bad(ErrWidth, "field %q element %d out of width %d", f.Name, it.Elem, f.Count)
			}
			if it.Age < 0 || it.Age >= s.history {
				return bad(ErrWindow, "age %d, schema %q keeps %d samples", it.Age, s.name, s.history)
			}
			g, ok := groupOf[it.Schema]
			if !ok {
				g = len(v.groups)
				groupOf[it.Schema] = g
				v.groups = append(v.groups, vecGroup{s: s})
			}
			v.groups[g].n = max(v.groups[g].n, it.Age+1)
			vi.group = g
		}
		v.items = append(v.items, vi)
		v.outLen += max(it.Digits, 1)
	}
	ng := len(v.groups)
	v.pool.New = func() any { w := make([]Window, ng); return &w }
	return v, nil
}

// Len returns the length of the vectors Build produces.
func (v *Vector) Len() int { return v.outLen }

// Inputs returns how many caller inputs Build needs.
func (v *Vector) Inputs() int { return v.inputs }

// Build appends the vector for key to dst[:0] and returns it. Each schema
// is read once, as one consistent window (ReadWindow). A key without
// history in a schema reads as zeros there.
func (v *Vector) Build(key uint64, inputs []int64, dst []int32) ([]int32, error) {
	if len(inputs) < v.inputs {
		return dst, fmt.Errorf("features: build vector: %w: %d inputs, spec uses %d", ErrWidth, len(inputs), v.inputs)
	}
	wp := v.pool.Get().(*[]Window)
	defer v.pool.Put(wp)
	ws := *wp
	for g, grp := range v.groups {
		err := v.r.ReadWindow(grp.s.id, key, grp.n, &ws[g])
		if errors.Is(err, ErrUnknownKey) {
			ws[g].Data, ws[g].Index = ws[g].Data[:0], ws[g].Index[:0]
		} else if err != nil {
			return dst, fmt.Errorf("features: build vector: %w", err)
		}
	}
	dst = dst[:0]
	for _, it := range v.items {
		var val int64
		if it.FromInput {
			val = inputs[it.Input]
		} else {
			w := &ws[it.group]
			if it.Age < w.Len() {
				s := v.groups[it.group].s
				val, _ = s.Int(w.Record(w.Len()-1-it.Age), it.field, it.Elem) // validated at compile
			}
		}
		dst = appendValue(dst, val, it.Digits)
	}
	return dst, nil
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

func appendValue(dst []int32, v int64, digits int) []int32 {
	if digits == 0 {
		return append(dst, int32(min(max(v, math.MinInt32), math.MaxInt32)))
	}
	v = min(max(v, 0), pow10[digits]-1)
	for d := digits - 1; d >= 0; d-- {
		dst = append(dst, int32(v/pow10[d]%10))
	}
	return dst
}
