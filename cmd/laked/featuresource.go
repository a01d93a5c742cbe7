package main

import (
	"fmt"

	"github.com/lakeos/lake/features"
)

// registrySource is a linnos.FeatureSource backed by the lock-free
// feature registry: every completed read of the demo's replay is recorded
// there (linnos.completion), and every LinnOS input vector is built from
// it, as for a kernel producer's records. The replay does not count reads
// per device, so its records carry no arrive/done ordinals (0).
//
// The replay is the only recorder of its devices, so each device's keys
// are owned (features.LinnOSDevice): records take the registry's
// single-writer path, with no atomic read-modify-write.
type registrySource struct {
	reg  *features.Registry
	l    *features.LinnOS
	run  uint64 // key prefix: each replay run gets fresh keys
	devs []*features.LinnOSDevice
	err  error // first recording error of the run (reported by Features)
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

// Reset starts a new run with fresh, owned keys and drops the previous
// run's.
func (r *registrySource) Reset(devices int) error {
	for _, d := range r.devs {
		_ = d.Drop()
	}
	r.devs, r.err = r.devs[:0], nil
	r.run++
	for dev := range devices {
		d, err := r.l.Own(r.key(dev))
		if err != nil {
			return fmt.Errorf("feature registry: device %d: %w", dev, err)
		}
		r.devs = append(r.devs, d)
	}
	return nil
}

func (r *registrySource) note(err error) {
	if err != nil && r.err == nil {
		r.err = err
	}
}

func (r *registrySource) Complete(dev, pendingAtArrival, latencyUs int) {
	if dev < 0 || dev >= len(r.devs) {
		r.note(fmt.Errorf("feature registry: device %d of %d", dev, len(r.devs)))
		return
	}
	r.note(r.devs[dev].RecordCompletion(features.LinnOSCompletion{LatencyUs: clampU32(latencyUs), Pending: clampU32(pendingAtArrival)}))
}

func (r *registrySource) Features(dev, pending int, dst []int32) error {
	if r.err != nil {
		return r.err
	}
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
