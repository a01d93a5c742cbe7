package adapt

import (
	"fmt"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/liteflow/model"
)

// RegistryFeed turns a feature-registry schema into training batches: a
// producer (kernel code, laked, or any process sharing the region) records
// one sample per record with a float field "x" of the model's input width
// and a float field "y" of its output width; Next drains what was recorded
// since the last call. Samples a slow consumer missed are counted, never
// silently lost (Dropped).
type RegistryFeed struct {
	d      *features.Drainer
	schema *features.SchemaInfo
	xf, yf int
	in     int
	out    int
	batch  features.Batch
	// Dropped counts samples recorded but never delivered (overwritten
	// before the feed drained them).
	Dropped uint64
}

// NewRegistryFeed drains schema id of r, whose fields "x" and "y" must
// be float arrays of in and out elements.
func NewRegistryFeed(r *features.Registry, id features.SchemaID, in, out int) (*RegistryFeed, error) {
	s, err := r.Schema(id)
	if err != nil {
		return nil, fmt.Errorf("adapt: registry feed: %w", err)
	}
	xf, yf := s.FieldIndex("x"), s.FieldIndex("y")
	if xf < 0 || yf < 0 {
		return nil, fmt.Errorf("adapt: registry feed: schema %q needs fields x and y", s.Name())
	}
	fs := s.Fields()
	isFloat := func(t features.FieldType) bool { return t == features.F32 || t == features.F64 }
	if fs[xf].Count != in || fs[yf].Count != out || !isFloat(fs[xf].Type) || !isFloat(fs[yf].Type) {
		return nil, fmt.Errorf("adapt: registry feed: schema %q has x[%d] %v and y[%d] %v, want float x[%d], y[%d]",
			s.Name(), fs[xf].Count, fs[xf].Type, fs[yf].Count, fs[yf].Type, in, out)
	}
	d, err := r.NewDrainer(id, false)
	if err != nil {
		return nil, fmt.Errorf("adapt: registry feed: %w", err)
	}
	return &RegistryFeed{d: d, schema: s, xf: xf, yf: yf, in: in, out: out}, nil
}

// Next drains up to max recorded samples into fresh model samples.
func (f *RegistryFeed) Next(max int) ([]model.Sample, error) {
	if err := f.d.Drain(max, &f.batch); err != nil {
		return nil, fmt.Errorf("adapt: registry feed: %w", err)
	}
	f.Dropped += f.batch.Dropped
	out := make([]model.Sample, 0, len(f.batch.Samples))
	for _, rs := range f.batch.Samples {
		s := model.Sample{X: make([]float32, f.in), Y: make([]float32, f.out)}
		for i := range s.X {
			v, err := f.schema.Float(rs.Data, f.xf, i)
			if err != nil {
				return nil, fmt.Errorf("adapt: registry feed: %w", err)
			}
			s.X[i] = float32(v)
		}
		for i := range s.Y {
			v, err := f.schema.Float(rs.Data, f.yf, i)
			if err != nil {
				return nil, fmt.Errorf("adapt: registry feed: %w", err)
			}
			s.Y[i] = float32(v)
		}
		out = append(out, s)
	}
	return out, nil
}
