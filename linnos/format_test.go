package linnos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

func sameInt(a, b *IntModel) bool {
	if a.Extra() != b.Extra() {
		return false
	}
	for i := 0; i < a.Extra()+2; i++ {
		wa, ba := a.Layer(i)
		wb, bb := b.Layer(i)
		if !slices.Equal(wa, wb) || !slices.Equal(ba, bb) {
			return false
		}
	}
	return true
}

func TestBinaryRoundTrip(t *testing.T) {
	for extra := 0; extra <= MaxExtra; extra++ {
		q := randomIntModel(t, extra, 4)
		meta := ModelMeta{ThresholdUs: 321, Pending: PendingPages}
		data, err := EncodeInt(q, meta)
		if err != nil {
			t.Fatal(err)
		}
		mf, err := ReadModel(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if mf.Int == nil || mf.Float != nil || mf.Meta != meta || !sameInt(mf.Int, q) {
			t.Fatalf("extra=%d: int round trip differs", extra)
		}
		f := randomFloatModel(t, extra, 4)
		data, err = EncodeFloat(f, meta)
		if err != nil {
			t.Fatal(err)
		}
		mf, err = DecodeModel(data)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.W {
			if !slices.Equal(mf.Float.W[i], f.W[i]) || !slices.Equal(mf.Float.B[i], f.B[i]) {
				t.Fatalf("extra=%d: float layer %d differs", extra, i)
			}
		}
		im, err := mf.IntModel()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Quantize(f)
		if !sameInt(im, want) {
			t.Fatal("IntModel() of a float file is not Quantize")
		}
	}
}

func TestBinaryRejectsCorruption(t *testing.T) {
	q := randomIntModel(t, 0, 4)
	data, err := EncodeInt(q, ModelMeta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{0, 9, 13, 21, 100, len(data) / 2, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x40
		if _, err := DecodeModel(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("flipped byte %d: %v, want ErrFormat", off, err)
		}
	}
	for _, n := range []int{0, 10, headerSize + 3, len(data) - 1} {
		if _, err := DecodeModel(data[:n]); !errors.Is(err, ErrFormat) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
	if _, err := DecodeModel(append(bytes.Clone(data), 0)); !errors.Is(err, ErrFormat) {
		t.Errorf("trailing byte accepted: %v", err)
	}
	if _, err := ReadModel(strings.NewReader(strings.Repeat("x", maxFileSize+10))); !errors.Is(err, ErrFormat) {
		t.Errorf("oversized file: %v", err)
	}
}

// TestOldFormatVersionRefused checks that a well-formed weight file of
// format version 1 (the earlier feature layout) is refused with
// ErrOldLayout and a message that says to retrain, and that a version this
// build does not know is a bad magic, not an old layout.
func TestOldFormatVersionRefused(t *testing.T) {
	data, err := EncodeInt(randomIntModel(t, 0, 4), ModelMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:8]) != "LINNOSW2" {
		t.Fatalf("magic %q, want LINNOSW2", data[:8])
	}
	withVersion := func(v byte) []byte {
		b := bytes.Clone(data)
		b[7] = v
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
		return b
	}
	_, err = DecodeModel(withVersion('1'))
	if !errors.Is(err, ErrOldLayout) || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "retrain") {
		t.Fatalf("version 1 file: %v, want ErrOldLayout saying to retrain", err)
	}
	for _, v := range []byte{'3', '0', 'X'} {
		if _, err := DecodeModel(withVersion(v)); !errors.Is(err, ErrFormat) || errors.Is(err, ErrOldLayout) {
			t.Errorf("version %c: %v, want a bad magic", v, err)
		}
	}
}

func TestHeaderRoundTripAndReferenceStyle(t *testing.T) {
	// (The +2 header is covered by TestBitExactWithCReference, which
	// compiles it; parsing 200k values is slow under -race.)
	for extra := 0; extra <= 1; extra++ {
		q := randomIntModel(t, extra, 8)
		var b bytes.Buffer
		if err := WriteHeader(&b, q, "_ent"); err != nil {
			t.Fatal(err)
		}
		got, err := ParseHeader(b.Bytes(), "")
		if err != nil {
			t.Fatal(err)
		}
		if !sameInt(got, q) {
			t.Fatalf("extra=%d: header round trip differs", extra)
		}
	}
	// A hand-written header in the reference style: comments, `static`,
	// declared dimensions, a trailing comma, L suffixes and two devices.
	var sb strings.Builder
	sb.WriteString("#ifndef W_H\n/* weights for two devices */\n")
	for _, dev := range []string{"_dev_0", "_dev_1"} {
		put := func(name string, n int, v string) {
			sb.WriteString("static long " + name + dev + "[" + "N" + "] = { // values\n")
			for i := 0; i < n; i++ {
				sb.WriteString(v + ", ")
			}
			sb.WriteString("\n};\n")
		}
		val := "3"
		if dev == "_dev_1" {
			val = "-7L"
		}
		put("weight_0_T", 256*31, val)
		put("weight_1_T", 2*256, val)
		put("bias_0", 256, "1000")
		put("bias_1", 2, "-2000000")
	}
	sb.WriteString("#endif\n")
	if _, err := ParseHeader([]byte(sb.String()), ""); !errors.Is(err, ErrHeader) {
		t.Fatalf("two devices without a suffix: %v, want ErrHeader", err)
	}
	m, err := ParseHeader([]byte(sb.String()), "_dev_1")
	if err != nil {
		t.Fatal(err)
	}
	w, b := m.Layer(0)
	if w[0] != -7 || w[len(w)-1] != -7 || b[0] != 1000 {
		t.Fatalf("dev_1 values %d %d %d", w[0], w[len(w)-1], b[0])
	}
	_, b1 := m.Layer(1)
	if b1[1] != -2000000 {
		t.Fatalf("bias_1 %v", b1)
	}
	for name, src := range map[string]string{
		"missing":   "long weight_0_T[1] = {1};",
		"short":     strings.Replace(sb.String(), "bias_1_dev_1[N] = { // values\n-2000000, ", "bias_1_dev_1[N] = { // values\n", 1),
		"notnumber": strings.Replace(sb.String(), "-7L, ", "x7, ", 1),
	} {
		if _, err := ParseHeader([]byte(src), "_dev_1"); !errors.Is(err, ErrHeader) {
			t.Errorf("%s: %v, want ErrHeader", name, err)
		}
	}
}

func FuzzDecodeModel(f *testing.F) {
	q := randomIntModel(f, 0, 1)
	good, _ := EncodeInt(q, ModelMeta{ThresholdUs: 5})
	f.Add(good)
	f.Add([]byte("LINNOSW2"))
	f.Add([]byte("LINNOSW1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mf, err := DecodeModel(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrShape) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		var again []byte
		if mf.Int != nil {
			again, err = EncodeInt(mf.Int, mf.Meta)
		} else {
			again, err = EncodeFloat(mf.Float, mf.Meta)
		}
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encode differs (err %v)", err)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	var b bytes.Buffer
	_ = WriteHeader(&b, randomIntModel(f, 0, 1), "")
	f.Add(b.String(), "")
	f.Add("long weight_0_T[2] = {1, 2,}; long bias_0[1]={3L};", "")
	f.Fuzz(func(t *testing.T, src, suffix string) {
		m, err := ParseHeader([]byte(src), suffix)
		if err != nil {
			if !errors.Is(err, ErrHeader) {
				t.Fatalf("unwrapped error %v", err)
			}
			return
		}
		if m.Extra() < 0 || m.Extra() > MaxExtra {
			t.Fatalf("extra %d", m.Extra())
		}
	})
}
