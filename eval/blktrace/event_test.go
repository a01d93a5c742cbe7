package blktrace

import (
	"errors"
	"testing"
)

func sampleEvent() Event {
	return Event{Kind: KindComplete, Op: OpRead, Dev: KernelDev(7, 3), Sector: 65536, Bytes: 4096,
		QueueDepth: 3, IssueNs: 1_000_000, DoneNs: 1_250_000}
}

func TestEventRoundTrip(t *testing.T) {
	e := sampleEvent()
	b := AppendEvent(nil, e)
	if len(b) != EventSize {
		t.Fatalf("encoded %d bytes, want %d", len(b), EventSize)
	}
	got, err := DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != e {
		t.Fatalf("got %+v, want %+v", got, e)
	}
	if got.LatencyNs() != 250_000 || got.Major() != 7 || got.Minor() != 3 {
		t.Fatalf("latency %d, dev %d:%d", got.LatencyNs(), got.Major(), got.Minor())
	}
	is := e
	is.Kind, is.DoneNs = KindIssue, 0
	if g, err := DecodeEvent(AppendEvent(nil, is)); err != nil || g.LatencyNs() != 0 {
		t.Fatalf("issue event: %+v, %v", g, err)
	}
}

func TestDecodeEventRejects(t *testing.T) {
	good := AppendEvent(nil, sampleEvent())
	cases := map[string]func([]byte) []byte{
		"short":         func(b []byte) []byte { return b[:EventSize-1] },
		"long":          func(b []byte) []byte { return append(b, 0) },
		"kind":          func(b []byte) []byte { b[40] = 9; return b },
		"op":            func(b []byte) []byte { b[41] = 4; return b },
		"padding":       func(b []byte) []byte { b[47] = 1; return b },
		"done<issue":    func(b []byte) []byte { b[15] = 0; b[8] = 1; b[9], b[10], b[11] = 0, 0, 0; return b },
		"zero size":     func(b []byte) []byte { b[28], b[29], b[30], b[31] = 0, 0, 0, 0; return b },
		"issue w/ done": func(b []byte) []byte { b[40] = byte(KindIssue); return b },
	}
	for name, mut := range cases {
		b := mut(append([]byte(nil), good...))
		if _, err := DecodeEvent(b); !errors.Is(err, ErrEvent) {
			t.Errorf("%s: err %v, want ErrEvent", name, err)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(AppendEvent(nil, sampleEvent()))
	f.Add(make([]byte, EventSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			if !errors.Is(err, ErrEvent) {
				t.Fatalf("error %v does not wrap ErrEvent", err)
			}
			return
		}
		if e.Kind == KindComplete && e.DoneNs < e.IssueNs {
			t.Fatalf("accepted completion before issue: %+v", e)
		}
		// Accepted events re-encode to the same bytes.
		if got := AppendEvent(nil, e); string(got) != string(b) {
			t.Fatalf("round trip changed %x to %x", b, got)
		}
	})
}
