package main

import (
	"fmt"

	"github.com/lakeos/lake/features"
)

// registrySource is a linnos.FeatureSource backed by the lock-free
// feature registry: every arrival and completion of the demo's replay is
// recorded there, and every LinnOS input vector is built from it, exactly
// as a kernel producer would record them.
type registrySource struct {
	reg  *features.Registry
	l    *features.LinnOS
	run  uint64 // key prefix: each replay run gets fresh keys
	devs int
	buf  []int32
}

func newRegistrySource(reg *features.Registry, maxDevices int) (*registrySource, error) {
	l, err := features.NewLinnOS(reg, maxDevices)
	if err != nil {
		return nil, err
	}
	return &registrySource{reg: reg, l: l}, nil
}

func (r *registrySource) key(dev int) uint64 { return r.run<<16 | uint64(dev) }

func clampU32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if v > 1<<31 {
		return 1 << 31
	}
	return uint32(v)
}

// Reset starts a new run with fresh keys and drops the previous run's.
func (r *registrySource) Reset(devices int) error {
	if r.run > 0 {
		for dev := 0; dev < r.devs; dev++ {
			_ = r.reg.DropKey(r.l.Arrivals(), r.key(dev))
			_ = r.reg.DropKey(r.l.Completions(), r.key(dev))
		}
	}
	r.run++
	r.devs = devices
	return nil
}

func (r *registrySource) Arrive(dev, pending int) {
	_ = r.l.RecordArrival(r.key(dev), clampU32(pending))
}

func (r *registrySource) Complete(dev, latencyUs int) {
	_ = r.l.RecordCompletion(r.key(dev), clampU32(latencyUs))
}

func (r *registrySource) Features(dev, pending int, dst []int32) error {
	v, err := r.l.Features(r.key(dev), clampU32(pending), dst[:0])
	if err != nil {
		return err
	}
	if len(v) != len(dst) {
		return fmt.Errorf("registry built %d inputs, want %d", len(v), len(dst))
	}
	copy(dst, v) // no-op when Features filled dst in place
	return nil
}
