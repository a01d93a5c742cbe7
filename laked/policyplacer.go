package laked

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/policy"
)

// PolicyPlacer asks the policy engine (eBPF in the kernel, or its Go
// twin) where every batch runs.
type PolicyPlacer struct {
	Engine *policy.Engine
	// Load reports GPU utilisation and free memory; nil reads as an idle
	// GPU with no free memory (so the default policy keeps to the CPU).
	Load policy.LoadSource
	// SelfLoad reports laked's own GPU utilisation (a policy.BusyTime
	// fed by the GPU models); nil reads as 0. It fills GPUSelfUtilPct,
	// which the kernel's reserved GPU share is judged by.
	SelfLoad policy.LoadSource
	// CPUUtil reports CPU utilisation in percent; nil reads as 0.
	CPUUtil func() uint32
	// Observe, when set, sees every context before the policy does (for
	// tests and tracing).
	Observe func(*policy.Context)
	Log     zerolog.Logger

	lastErrLog atomic.Int64 // unix nanos of the last logged error
}

// Place implements Placer.
func (p *PolicyPlacer) Place(b BatchInfo) bool {
	gpu, _ := p.PlaceHint(b)
	return gpu
}

// PlaceHint implements HintPlacer: the policy's side and batch-size hint.
func (p *PolicyPlacer) PlaceHint(b BatchInfo) (bool, int) {
	ctx := policy.Context{
		ModelID:      b.Model,
		BatchSize:    clampU32(b.Items),
		QueueDepth:   clampU32(b.QueueDepth),
		CPUNsPerItem: uint64(max(b.CPUPerItem, 0)),
		GPUNsPerItem: uint64(max(b.GPUPerItem, 0)),
		KernelItems:  clampU32(b.KernelItems),
	}
	if p.CPUUtil != nil {
		ctx.CPUUtilPct = p.CPUUtil()
	}
	if p.Load != nil {
		if l, err := p.Load.Sample(); err == nil {
			l.Fill(&ctx)
		} else {
			p.logErr(err, "gpu load sample")
		}
	}
	if p.SelfLoad != nil {
		if l, err := p.SelfLoad.Sample(); err == nil {
			ctx.GPUSelfUtilPct = min(l.GPUUtilPct, 100)
		} else {
			p.logErr(err, "laked gpu busy sample")
		}
	}
	if p.Observe != nil {
		p.Observe(&ctx)
	}
	d, err := p.Engine.Decide(&ctx)
	if err != nil {
		// Decide still returned a usable decision (the Go twin's).
		p.logErr(err, "policy decision")
	}
	return d.Side == policy.GPU, int(d.BatchHint)
}

// logErr logs at most one error a second: a broken policy must not flood
// the log at batch rate.
func (p *PolicyPlacer) logErr(err error, what string) {
	now := time.Now().UnixNano()
	last := p.lastErrLog.Load()
	if now-last < int64(time.Second) || !p.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	p.Log.Warn().Err(err).Msg(what)
}

func clampU32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}
