package cuda

import (
	"testing"
	"unsafe"
)

// TestHostRanges: which host memory a batch's copies may treat as
// page-locked (launchRuns waits for the kernel itself before copying
// outputs to anything else).
func TestHostRanges(t *testing.T) {
	buf := make([]byte, 1<<16)
	a, b := buf[4096:8192], buf[16384:32768]
	var rs hostRanges
	rs = rs.with(b)
	rs = rs.with(a)
	if len(rs) != 2 || rs[0].lo > rs[1].lo {
		t.Fatalf("not sorted: %v", rs)
	}
	cases := []struct {
		name string
		p    []byte
		want bool
	}{
		{"a whole", a, true},
		{"inside a", a[100:200], true},
		{"end of a", a[len(a)-1:], true},
		{"inside b", b[5000:6000], true},
		{"empty", buf[:0], true},
		{"before a", buf[4000:4100], false},
		{"across a's end", buf[8000:8300], false},
		{"between", buf[9000:10000], false},
		{"across a and b", buf[4096:32768], false},
		{"after b", buf[40000:41000], false},
		{"across b's end", buf[32000:33000], false},
		{"Go memory elsewhere", make([]byte, 64), false},
	}
	for _, c := range cases {
		if got := rs.contains(c.p); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	rs2 := rs.without(unsafe.Pointer(&a[0]))
	if rs2.contains(a) || !rs2.contains(b) || !rs.contains(a) {
		t.Fatal("without: removed the wrong range, or changed the original")
	}
	if (hostRanges{}).contains(a) {
		t.Fatal("empty set contains a")
	}
}
