package linnos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Binary weight format (all integers little-endian):
//
//	offset size field
//	0      8    magic "LINNOSW" + FormatVersion ("LINNOSW2")
//	8      4    kind: 1 = float32 weights, 2 = int64 (quantized) weights
//	12     4    extra hidden layers (0, 1 or 2)
//	16     4    slow threshold in µs used to label training data (0 = unknown)
//	20     4    pending unit (0 = I/Os, 1 = 4 KiB pages)
//	24     ...  for each layer i = 0..extra+1: W[i] (out×in values, row-major
//	            [out][in]) then B[i] (out values); float32 or int64 per kind
//	end-4  4    CRC-32 (IEEE) of every preceding byte
//
// Layer sizes are implied by the layer count (31→256, 256→256, 256→2), so a
// file has exactly one valid length per kind and layer count.
//
// The format version (the magic's last character) names the feature layout
// the weights were trained on (features.go): version 2 is the layout of
// LinnOS and LAKE; version 1 files, trained on lake's earlier layout
// (pending count now first, a history of all I/Os), are refused with
// ErrOldLayout, since their weights would be read against other inputs.

// Format constants.
const (
	FormatVersion = 2
	formatPrefix  = "LINNOSW"
	formatMagic   = "LINNOSW2"
	KindFloat32   = 1
	KindInt64     = 2
	headerSize    = 24
	checksumSize  = 4
)

// ErrFormat is returned (wrapped) for malformed weight files.
var ErrFormat = errors.New("linnos: bad weight file")

// ErrOldLayout is returned (wrapped, with ErrFormat) for a weight file of an
// earlier format version, trained on another feature layout.
var ErrOldLayout = errors.New("linnos: weight file trained on an older feature layout")

// ModelMeta is the metadata stored with the weights.
type ModelMeta struct {
	ThresholdUs uint32
	Pending     PendingUnit
}

// ModelFile is a decoded weight file: exactly one of Float and Int is set.
type ModelFile struct {
	Meta  ModelMeta
	Float *FloatModel
	Int   *IntModel
}

// IntModel returns the integer model (quantizing the float model if needed).
func (f *ModelFile) IntModel() (*IntModel, error) {
	if f.Int != nil {
		return f.Int, nil
	}
	if f.Float == nil {
		return nil, fmt.Errorf("%w: empty model file", ErrFormat)
	}
	return Quantize(f.Float)
}

func modelSize(kind, extra int) int {
	n := 0
	for i := 0; i < extra+2; i++ {
		in, out := LayerDims(extra, i)
		n += in*out + out
	}
	per := 4
	if kind == KindInt64 {
		per = 8
	}
	return headerSize + n*per + checksumSize
}

func putHeader(buf []byte, kind, extra int, meta ModelMeta) []byte {
	buf = append(buf, formatMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(kind))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(extra))
	buf = binary.LittleEndian.AppendUint32(buf, meta.ThresholdUs)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(meta.Pending))
	return buf
}

// EncodeFloat serialises a float model.
func EncodeFloat(m *FloatModel, meta ModelMeta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode float model: %w", err)
	}
	buf := make([]byte, 0, modelSize(KindFloat32, m.Extra))
	buf = putHeader(buf, KindFloat32, m.Extra, meta)
	for i := range m.W {
		for _, v := range m.W[i] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		for _, v := range m.B[i] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf)), nil
}

// EncodeInt serialises an integer model.
func EncodeInt(m *IntModel, meta ModelMeta) ([]byte, error) {
	buf := make([]byte, 0, modelSize(KindInt64, m.extra))
	buf = putHeader(buf, KindInt64, m.extra, meta)
	for i := range m.w {
		for _, v := range m.w[i] {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
		}
		for _, v := range m.b[i] {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
		}
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf)), nil
}

// maxFileSize bounds what ReadModel accepts (the +2 int64 model is ~1.2 MB).
const maxFileSize = 4 << 20

// ReadModel reads and decodes a weight file from r (at most 4 MiB).
func ReadModel(r io.Reader) (*ModelFile, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read weight file: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, maxFileSize)
	}
	return DecodeModel(data)
}

// DecodeModel decodes a weight file held in memory. It never panics on bad
// input.
func DecodeModel(data []byte) (*ModelFile, error) {
	if len(data) < headerSize+checksumSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrFormat, len(data))
	}
	if !bytes.Equal(data[:8], []byte(formatMagic)) {
		if bytes.Equal(data[:7], []byte(formatPrefix)) && data[7] >= '1' && data[7] < '0'+FormatVersion {
			return nil, fmt.Errorf("%w: %w: format version %c (pending count now first, history of all I/Os); this build reads version %d (the LinnOS/LAKE layout): retrain the model (linnos train)", ErrFormat, ErrOldLayout, data[7], FormatVersion)
		}
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, data[:8])
	}
	kind := binary.LittleEndian.Uint32(data[8:])
	extra := binary.LittleEndian.Uint32(data[12:])
	meta := ModelMeta{
		ThresholdUs: binary.LittleEndian.Uint32(data[16:]),
		Pending:     PendingUnit(binary.LittleEndian.Uint32(data[20:])),
	}
	if kind != KindFloat32 && kind != KindInt64 {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrFormat, kind)
	}
	if extra > MaxExtra {
		return nil, fmt.Errorf("%w: %d extra layers (max %d)", ErrFormat, extra, MaxExtra)
	}
	if meta.Pending != PendingIOs && meta.Pending != PendingPages {
		return nil, fmt.Errorf("%w: unknown pending unit %d", ErrFormat, meta.Pending)
	}
	want := modelSize(int(kind), int(extra))
	if len(data) != want {
		return nil, fmt.Errorf("%w: %d bytes, want %d for kind %d with %d extra layers", ErrFormat, len(data), want, kind, extra)
	}
	body := data[:len(data)-checksumSize]
	if got, sum := crc32.ChecksumIEEE(body), binary.LittleEndian.Uint32(data[len(body):]); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, file says %08x", ErrFormat, got, sum)
	}
	p := body[headerSize:]
	mf := &ModelFile{Meta: meta}
	e := int(extra)
	if kind == KindFloat32 {
		m, err := NewFloatModel(e)
		if err != nil {
			return nil, err
		}
		for i := range m.W {
			for k := range m.W[i] {
				m.W[i][k] = math.Float32frombits(binary.LittleEndian.Uint32(p))
				p = p[4:]
			}
			for k := range m.B[i] {
				m.B[i][k] = math.Float32frombits(binary.LittleEndian.Uint32(p))
				p = p[4:]
			}
		}
		mf.Float = m
		return mf.checked()
	}
	w := make([][]int64, e+2)
	b := make([][]int64, e+2)
	for i := range w {
		in, out := LayerDims(e, i)
		w[i] = make([]int64, in*out)
		b[i] = make([]int64, out)
		for k := range w[i] {
			w[i][k] = int64(binary.LittleEndian.Uint64(p))
			p = p[8:]
		}
		for k := range b[i] {
			b[i][k] = int64(binary.LittleEndian.Uint64(p))
			p = p[8:]
		}
	}
	m, err := NewIntModel(e, w, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	mf.Int = m
	return mf.checked()
}
