package laked

import (
	"fmt"
	"unsafe"

	"github.com/lakeos/lake/linnos"
)

// LinnOS record sizes on the wire: 31 int32 digits in, one int32 class out
// (0 fast, 1 slow: revoke), little-endian.
const (
	LinnOSInputBytes  = 4 * linnos.NumInputs
	LinnOSOutputBytes = 4
)

// LinnOSModel serves a LinnOS integer model (bit-exact with the reference
// inference) through predict.
type LinnOSModel struct {
	name string
	m    *linnos.IntModel
	meta linnos.ModelMeta
	img  lazyImage
}

// NewLinnOSModel serves m under name. Its image (model_fetch) carries
// default metadata; NewLinnOSModelMeta gives the weight file's own.
func NewLinnOSModel(name string, m *linnos.IntModel) *LinnOSModel {
	return &LinnOSModel{name: name, m: m}
}

// NewLinnOSModelMeta serves m under name with the metadata of the weight
// file it came from (slow threshold, pending unit), which its image
// carries.
func NewLinnOSModelMeta(name string, m *linnos.IntModel, meta linnos.ModelMeta) *LinnOSModel {
	return &LinnOSModel{name: name, m: m, meta: meta}
}

// IntModel is the served integer model.
func (l *LinnOSModel) IntModel() *linnos.IntModel { return l.m }

// Meta is the weight-file metadata the model's image carries.
func (l *LinnOSModel) Meta() linnos.ModelMeta { return l.meta }

// Image implements ImageExporter: the integer weight file (linnos.EncodeInt).
func (l *LinnOSModel) Image() (string, []byte, error) {
	data, err := l.img.get(func() ([]byte, error) { return linnos.EncodeInt(l.m, l.meta) })
	return ImageLinnOS, data, err
}

// Info implements Model.
func (l *LinnOSModel) Info() ModelInfo {
	return ModelInfo{Name: l.name, InputBytes: LinnOSInputBytes, OutputBytes: LinnOSOutputBytes}
}

// Predict implements Model.
func (l *LinnOSModel) Predict(in, out []byte, n int) error {
	if len(in) != n*LinnOSInputBytes || len(out) != n*LinnOSOutputBytes {
		return fmt.Errorf("linnos model: %d items with %d/%d bytes", n, len(in), len(out))
	}
	return l.m.PredictBatch(bytesAsInt32(in), bytesAsInt32(out))
}

// bytesAsInt32 views little-endian int32 records in place (lake runs on
// little-endian hosts only; batch buffers are Go allocations, 8-byte
// aligned).
func bytesAsInt32(b []byte) []int32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
}
