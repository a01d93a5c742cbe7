package shm

import (
	"errors"
	"testing"
)

// FuzzOpenRegion feeds arbitrary header pages to the region validator: it
// must return an error or a layout that lies inside the memory, never
// panic.
func FuzzOpenRegion(f *testing.F) {
	l, _ := DefaultConfig.Layout()
	good := make([]byte, HeaderSize)
	full := make([]byte, l.RegionSize)
	if err := WriteHeader(full, l, 1); err != nil {
		f.Fatal(err)
	}
	copy(good, full)
	f.Add(good)
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		if len(hdr) > HeaderSize {
			hdr = hdr[:HeaderSize]
		}
		m, err := NewAnonymous(64 * PageSize)
		if err != nil {
			t.Skip(err)
		}
		defer m.Close()
		copy(m.Mem, hdr)
		r, err := OpenRegion(m.Mem)
		if err != nil {
			return
		}
		lay := r.Layout()
		if lay.RegionSize > uint64(len(m.Mem)) || lay.ArenaOff+lay.ArenaSize > lay.RegionSize {
			t.Fatalf("accepted layout outside memory: %+v", lay)
		}
		// Touch every area the layout names.
		_ = r.SQ().Consume(make([]SQE, 4))
		_ = r.CQ().Reap(make([]CQE, 4))
		_, _ = r.ArenaRange(0, lay.ArenaSize)
	})
}

// FuzzDecodeHello checks that any 64-byte message decodes to an error or
// to a hello whose config is valid.
func FuzzDecodeHello(f *testing.F) {
	f.Add((&Hello{Kind: HelloNew, Config: DefaultConfig}).Encode())
	f.Add((&Hello{Kind: HelloReattach}).Encode())
	f.Add(make([]byte, HandshakeLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHello(b)
		if err != nil {
			return
		}
		if h.Kind == HelloNew {
			if verr := h.Config.Validate(); verr != nil {
				t.Fatalf("accepted invalid config: %v", verr)
			}
		}
		r := Reply{Status: StatusInvalidValue, ClientID: 3, RegionSize: 99, Message: "x"}
		back, err := DecodeReply(r.Encode())
		if err != nil || back != r {
			t.Fatalf("reply round trip: %+v %v", back, err)
		}
	})
}

// FuzzDecodeLaunchDesc checks the launch descriptor decoder.
func FuzzDecodeLaunchDesc(f *testing.F) {
	f.Add(EncodeLaunchDesc(nil, &LaunchDesc{Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{32, 1, 1}, Params: make([]byte, 32)}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d LaunchDesc
		if err := DecodeLaunchDesc(b, &d); err != nil {
			return
		}
		if len(d.Params)%8 != 0 || len(d.Params) > MaxLaunchParams {
			t.Fatalf("accepted %d param bytes", len(d.Params))
		}
		re := EncodeLaunchDesc(nil, &d)
		if string(re) != string(b) {
			t.Fatal("launch descriptor does not round-trip")
		}
	})
}

// FuzzDecodeSQE checks that slot decoding round-trips every bit pattern.
func FuzzDecodeSQE(f *testing.F) {
	seed := make([]byte, SlotSize)
	EncodeSQE(seed, &SQE{Opcode: OpPredict, Tag: 42, Args: [NumArgs]uint64{1, 2, 3, 4, 5, 6}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < SlotSize {
			return
		}
		var e SQE
		DecodeSQE(b[:SlotSize], &e)
		re := make([]byte, SlotSize)
		EncodeSQE(re, &e)
		if string(re[4:]) != string(b[4:SlotSize]) {
			t.Fatal("slot does not round-trip")
		}
		_ = e.Opcode.String()
	})
}

func TestHandshakeErrors(t *testing.T) {
	b := (&Hello{Kind: HelloNew, Config: DefaultConfig}).Encode()
	b[4] = 9
	if _, err := DecodeHello(b); !errors.Is(err, ErrBadVersion) {
		t.Fatalf("wrong version: %v", err)
	}
	b = (&Hello{Kind: 7, Config: DefaultConfig}).Encode()
	if _, err := DecodeHello(b); !errors.Is(err, ErrHandshake) {
		t.Fatalf("unknown kind: %v", err)
	}
	b = (&Hello{Kind: HelloNew, Config: Config{SQEntries: 3}}).Encode()
	if _, err := DecodeHello(b); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := DecodeHello(b[:10]); !errors.Is(err, ErrHandshake) {
		t.Fatalf("short hello: %v", err)
	}
}
