package snapshot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/lakeos/lake/liteflow/model"
)

// Format constants; see liteflow/SNAPSHOT.md.
const (
	Magic         = "LKSN"
	FormatVersion = 1
	HeaderSize    = 48
	LayerHeader   = 32
	TrailerSize   = 4
	// MaxSize bounds an encoded snapshot (16 full 1024x1024 layers fit).
	MaxSize = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func pad4(n int) int { return (n + 3) &^ 3 }

func layerSize(in, out int, perChannel bool, act model.Activation) int {
	nch := 1
	if perChannel {
		nch = out
	}
	n := LayerHeader + nch*12 + out*4 + pad4(in*out)
	if act == model.Tanh || act == model.Sigmoid {
		n += TableSize
	}
	return n
}

// Encode validates s and serialises it in format version 1.
func Encode(s *Snapshot) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("snapshot: encode: %w", err)
	}
	total := HeaderSize + TrailerSize
	for _, l := range s.Layers {
		total += layerSize(l.In, l.Out, l.PerChannel, l.Act)
	}
	b := make([]byte, total)
	le := binary.LittleEndian
	copy(b[0:4], Magic)
	le.PutUint16(b[4:], FormatVersion)
	le.PutUint16(b[6:], HeaderSize)
	le.PutUint32(b[8:], uint32(total))
	le.PutUint32(b[12:], 0) // flags
	le.PutUint64(b[16:], s.Generation)
	b[24] = byte(s.DType)
	b[25] = byte(len(s.Layers))
	le.PutUint16(b[26:], uint16(s.InputDim()))
	le.PutUint32(b[28:], math.Float32bits(s.Input.Scale))
	le.PutUint32(b[32:], uint32(s.Input.Zero))
	le.PutUint16(b[36:], uint16(s.OutputDim()))
	off := HeaderSize
	for _, l := range s.Layers {
		size := layerSize(l.In, l.Out, l.PerChannel, l.Act)
		h := b[off:]
		le.PutUint16(h[0:], uint16(l.In))
		le.PutUint16(h[2:], uint16(l.Out))
		h[4] = byte(l.Act)
		if l.PerChannel {
			h[5] = 1
		}
		le.PutUint32(h[8:], math.Float32bits(l.Pre.Scale))
		le.PutUint32(h[12:], uint32(l.Pre.Zero))
		le.PutUint32(h[16:], math.Float32bits(l.OutQ.Scale))
		le.PutUint32(h[20:], uint32(l.OutQ.Zero))
		le.PutUint32(h[24:], uint32(size))
		p := off + LayerHeader
		for _, v := range l.WScale {
			le.PutUint32(b[p:], math.Float32bits(v))
			p += 4
		}
		for _, v := range l.Mult {
			le.PutUint32(b[p:], uint32(v))
			p += 4
		}
		for _, v := range l.Shift {
			le.PutUint32(b[p:], uint32(v))
			p += 4
		}
		for _, v := range l.Bias {
			le.PutUint32(b[p:], uint32(v))
			p += 4
		}
		for i, v := range l.W {
			b[p+i] = byte(v)
		}
		p += pad4(len(l.W))
		if l.LUT != nil {
			for i, v := range l.LUT {
				b[p+i] = byte(v)
			}
			p += TableSize
		}
		off += size
	}
	le.PutUint32(b[off:], crc32.Checksum(b[:off], castagnoli))
	return b, nil
}

// Decode parses and validates an encoded snapshot. The input is untrusted:
// any inconsistency is reported as an error wrapping ErrInvalid, never a
// panic. The returned snapshot does not alias b.
func Decode(b []byte) (*Snapshot, error) {
	s, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot: decode: %w", err)
	}
	return s, nil
}

func decode(b []byte) (*Snapshot, error) {
	le := binary.LittleEndian
	if len(b) < HeaderSize+TrailerSize {
		return nil, invalid("%d bytes is shorter than header and trailer (%d)", len(b), HeaderSize+TrailerSize)
	}
	if len(b) > MaxSize {
		return nil, invalid("%d bytes exceeds the limit %d", len(b), MaxSize)
	}
	if string(b[0:4]) != Magic {
		return nil, invalid("bad magic %q", b[0:4])
	}
	if v := le.Uint16(b[4:]); v != FormatVersion {
		return nil, invalid("unsupported format version %d (want %d)", v, FormatVersion)
	}
	if h := le.Uint16(b[6:]); h != HeaderSize {
		return nil, invalid("header size %d (want %d)", h, HeaderSize)
	}
	if t := le.Uint32(b[8:]); uint64(t) != uint64(len(b)) {
		return nil, invalid("total length field %d but %d bytes given", t, len(b))
	}
	end := len(b) - TrailerSize
	if want, got := le.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); want != got {
		return nil, invalid("checksum mismatch: stored %#08x, computed %#08x", want, got)
	}
	if f := le.Uint32(b[12:]); f != 0 {
		return nil, invalid("unknown flags %#x", f)
	}
	if le.Uint16(b[38:]) != 0 || le.Uint64(b[40:]) != 0 {
		return nil, invalid("reserved header bytes not zero")
	}
	s := &Snapshot{
		Generation: le.Uint64(b[16:]),
		DType:      DType(b[24]),
		Input:      QParams{Scale: math.Float32frombits(le.Uint32(b[28:])), Zero: int32(le.Uint32(b[32:]))},
	}
	if s.DType != Int8 && s.DType != Uint8 {
		return nil, invalid("unknown activation type %d", b[24])
	}
	nl := int(b[25])
	if nl < 1 || nl > MaxLayers {
		return nil, invalid("%d layers outside [1, %d]", nl, MaxLayers)
	}
	inDim, outDim := int(le.Uint16(b[26:])), int(le.Uint16(b[36:]))
	off := HeaderSize
	prevOut := inDim
	s.Layers = make([]Layer, nl)
	for li := 0; li < nl; li++ {
		if end-off < LayerHeader {
			return nil, invalid("layer %d header at offset %d runs past the data end %d", li, off, end)
		}
		h := b[off:]
		l := &s.Layers[li]
		l.In, l.Out = int(le.Uint16(h[0:])), int(le.Uint16(h[2:]))
		l.Act = model.Activation(h[4])
		if l.In < 1 || l.In > MaxWidth || l.Out < 1 || l.Out > MaxWidth {
			return nil, invalid("layer %d shape %dx%d outside [1, %d]", li, l.In, l.Out, MaxWidth)
		}
		if l.In != prevOut {
			return nil, invalid("layer %d has %d inputs, previous stage has %d outputs", li, l.In, prevOut)
		}
		if !l.Act.Valid() {
			return nil, invalid("layer %d: unknown activation %d", li, h[4])
		}
		switch h[5] {
		case 0:
		case 1:
			l.PerChannel = true
		default:
			return nil, invalid("layer %d: unknown weight granularity %d", li, h[5])
		}
		if le.Uint16(h[6:]) != 0 || le.Uint32(h[28:]) != 0 {
			return nil, invalid("layer %d: reserved bytes not zero", li)
		}
		l.Pre = QParams{Scale: math.Float32frombits(le.Uint32(h[8:])), Zero: int32(le.Uint32(h[12:]))}
		l.OutQ = QParams{Scale: math.Float32frombits(le.Uint32(h[16:])), Zero: int32(le.Uint32(h[20:]))}
		size := layerSize(l.In, l.Out, l.PerChannel, l.Act)
		if rec := le.Uint32(h[24:]); uint64(rec) != uint64(size) {
			return nil, invalid("layer %d: record length %d, shape implies %d", li, rec, size)
		}
		if end-off < size {
			return nil, invalid("layer %d record (%d bytes at offset %d) runs past the data end %d", li, size, off, end)
		}
		nch := 1
		if l.PerChannel {
			nch = l.Out
		}
		p := off + LayerHeader
		l.WScale = make([]float32, nch)
		l.Mult = make([]int32, nch)
		l.Shift = make([]int32, nch)
		for c := range l.WScale {
			l.WScale[c] = math.Float32frombits(le.Uint32(b[p+4*c:]))
		}
		p += 4 * nch
		for c := range l.Mult {
			l.Mult[c] = int32(le.Uint32(b[p+4*c:]))
		}
		p += 4 * nch
		for c := range l.Shift {
			l.Shift[c] = int32(le.Uint32(b[p+4*c:]))
		}
		p += 4 * nch
		l.Bias = make([]int32, l.Out)
		for o := range l.Bias {
			l.Bias[o] = int32(le.Uint32(b[p+4*o:]))
		}
		p += 4 * l.Out
		l.W = make([]int8, l.In*l.Out)
		for i := range l.W {
			l.W[i] = int8(b[p+i])
		}
		for _, z := range b[p+len(l.W) : p+pad4(len(l.W))] {
			if z != 0 {
				return nil, invalid("layer %d: weight padding not zero", li)
			}
		}
		p += pad4(len(l.W))
		if l.Act == model.Tanh || l.Act == model.Sigmoid {
			l.LUT = make([]int32, TableSize)
			for i := range l.LUT {
				if s.DType == Uint8 {
					l.LUT[i] = int32(b[p+i])
				} else {
					l.LUT[i] = int32(int8(b[p+i]))
				}
			}
		}
		off += size
		prevOut = l.Out
	}
	if off != end {
		return nil, invalid("%d trailing bytes after the last layer", end-off)
	}
	if outDim != prevOut {
		return nil, invalid("header output dimension %d, last layer has %d outputs", outDim, prevOut)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}
