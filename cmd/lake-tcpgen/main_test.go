//go:build linux

package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestClientAgainstServer runs a short client against the server on
// loopback: the change time, then three phases (before, after, late
// after the change), each with throughput, RTT and completed short
// flows, and the change command run once.
func TestClientAgainstServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go serve(l)
	mark := filepath.Join(t.TempDir(), "changed")
	var out bytes.Buffer
	err = run([]string{"client", "-addr", l.Addr().String(), "-tag", "t", "-duration", "1600ms", "-change", "800ms",
		"-change-cmd", "echo x >> " + mark, "-warmup", "200ms", "-flow-every", "100ms", "-flow-size", "20000"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	re := regexp.MustCompile(`^TCPGEN tag=t phase=(\d) mbps=(\S+) rtt_ms=\S+ fct_p50_ms=(\S+) fct_mean_ms=\S+ flows=(\d+) failed=0$`)
	if len(lines) != 4 || !regexp.MustCompile(`^TCPGEN tag=t change at_ms=1\d{12}$`).MatchString(lines[0]) {
		t.Fatalf("output %q", out.String())
	}
	for i, ln := range lines[1:] {
		m := re.FindStringSubmatch(ln)
		if m == nil || m[1] != string(rune('0'+i)) || m[2] == "0.00" || m[4] == "0" || m[3] == "0.0" {
			t.Fatalf("phase %d line %q", i, ln)
		}
	}
	if b, err := os.ReadFile(mark); err != nil || string(b) != "x\n" {
		t.Fatalf("change command ran: %q, %v", b, err)
	}
	if err := run([]string{"client", "-addr", l.Addr().String(), "-flow-size", "0"}, &out); err == nil {
		t.Fatal("flow size 0 accepted")
	}
}
