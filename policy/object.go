package policy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
)

// MaxObjectSize bounds the size of a policy object file read by LoadFile.
const MaxObjectSize = 16 << 20

// ErrBadObject is wrapped by every error about a policy object that is not
// acceptable (unparsable ELF, missing or mistyped program or map).
var ErrBadObject = errors.New("bad policy object")

// ParseObject parses an untrusted policy object (a BPF ELF file) and checks
// that it provides what laked needs: a program named ProgramName of type
// RawTracepoint or Syscall and an array map named ParamsMapName with a 4-byte
// key, a ParamsSize-byte value and at least one entry. It does not touch the
// kernel. Other programs and maps in the object are allowed and ignored:
// loading takes only ProgramName and what it references.
func ParseObject(data []byte) (spec *ebpf.CollectionSpec, err error) {
	defer func() {
		// The ELF parser is third-party code fed untrusted bytes: a panic
		// in it must not take laked down.
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("%w: ELF parser panicked: %v", ErrBadObject, r)
		}
	}()
	full, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: parse ELF: %w", ErrBadObject, err)
	}
	return checkSpec(full)
}

// checkSpec validates a parsed collection.
func checkSpec(full *ebpf.CollectionSpec) (*ebpf.CollectionSpec, error) {
	prog, ok := full.Programs[ProgramName]
	if !ok {
		names := make([]string, 0, len(full.Programs))
		for n := range full.Programs {
			names = append(names, n)
		}
		return nil, fmt.Errorf("%w: no program named %q (found %q)", ErrBadObject, ProgramName, names)
	}
	switch prog.Type {
	case ebpf.RawTracepoint:
	case ebpf.Syscall:
	default:
		return nil, fmt.Errorf("%w: program %q has type %s, want %s (SEC(\"raw_tp\")) or %s (SEC(\"syscall\"))",
			ErrBadObject, ProgramName, prog.Type, ebpf.RawTracepoint, ebpf.Syscall)
	}
	m, ok := full.Maps[ParamsMapName]
	if !ok {
		return nil, fmt.Errorf("%w: no map named %q", ErrBadObject, ParamsMapName)
	}
	if m.Type != ebpf.Array {
		return nil, fmt.Errorf("%w: map %q has type %s, want %s", ErrBadObject, ParamsMapName, m.Type, ebpf.Array)
	}
	if m.KeySize != 4 || m.ValueSize != ParamsSize {
		return nil, fmt.Errorf("%w: map %q has key/value size %d/%d, want 4/%d (struct lake_policy_params)",
			ErrBadObject, ParamsMapName, m.KeySize, m.ValueSize, ParamsSize)
	}
	if m.MaxEntries < 1 {
		return nil, fmt.Errorf("%w: map %q has no entries", ErrBadObject, ParamsMapName)
	}
	if full.ByteOrder == nil || full.ByteOrder.Uint16([]byte{1, 0}) != binary.NativeEndian.Uint16([]byte{1, 0}) {
		return nil, fmt.Errorf("%w: object byte order %v does not match this machine", ErrBadObject, full.ByteOrder)
	}
	return full, nil
}

// readObject reads a policy object file, refusing files over MaxObjectSize.
func readObject(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open policy object: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxObjectSize+1))
	if err != nil {
		return nil, fmt.Errorf("read policy object %s: %w", path, err)
	}
	if len(data) > MaxObjectSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadObject, path, MaxObjectSize)
	}
	return data, nil
}
