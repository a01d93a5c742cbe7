package policy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/lakeos/lake/internal/regfile"
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
	// A regular file only, opened without waiting: a FIFO or a device
	// named as a policy cannot block or flood the loader.
	data, err := regfile.ReadFile(context.Background(), path, MaxObjectSize)
	if errors.Is(err, regfile.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadObject, path, MaxObjectSize)
	}
	if errors.Is(err, regfile.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %v", ErrBadObject, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open policy object: %w", err)
	}
	return data, nil
}
