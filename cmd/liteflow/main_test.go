package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestToyAndInfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "toy.lksn")
	var out bytes.Buffer
	if err := run([]string{"toy", "-o", p, "-in", "4", "-out", "2", "-gen", "9"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run([]string{"info", p}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "generation 9, int8, 4 -> 2") {
		t.Fatalf("info: %s", out.String())
	}
	b, _ := os.ReadFile(p)
	b[len(b)-2] ^= 1
	os.WriteFile(p, b, 0o644)
	if err := run([]string{"info", p}, &out); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt file: %v", err)
	}
	if err := run([]string{"aurora"}, &out); err == nil {
		t.Fatal("aurora without -o accepted")
	}
}

func TestAurora(t *testing.T) {
	p := filepath.Join(t.TempDir(), "aurora.lksn")
	var out bytes.Buffer
	if err := run([]string{"aurora", "-o", p, "-pretrain", "2s", "-epochs", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "30 -> 1") || !strings.Contains(out.String(), "layer 0: 30 -> 32 tanh per-channel=true") {
		t.Fatalf("aurora: %s", out.String())
	}
}
