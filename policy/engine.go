package policy

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// ErrNoBPF is wrapped when an operation needs BPF and the engine runs the Go
// fallback.
var ErrNoBPF = errors.New("BPF policies unavailable")

// ErrClosed is returned by an Engine after Close.
var ErrClosed = errors.New("policy engine closed")

// Options configure New.
type Options struct {
	// Policy names the shipped policy to start with ("default" when empty).
	Policy string
	// File, when set, is a compiled policy object to start with instead of
	// Policy. If it is rejected the engine starts with Policy and says why
	// in Status().Note.
	File string
	// Params are the initial tunables; nil means DefaultParams().
	Params *Params
	// DisableBPF forces the pure-Go fallback.
	DisableBPF bool
}

// Status says what the engine runs and why.
type Status struct {
	// Active names the active policy: a shipped name or "file:PATH".
	Active string
	// Kernel is true when decisions run as BPF in the kernel, false when
	// the pure-Go fallback answers them.
	Kernel bool
	// Note, when not empty, explains a degraded start (why the Go fallback
	// is used, or why Options.File was rejected). laked logs it once.
	Note string
}

// Counts are the decisions taken since New, per side.
type Counts struct {
	CPU uint64 // decisions for the CPU
	GPU uint64 // decisions for the GPU
	// Errors counts decisions the active BPF policy failed to make (run
	// error or invalid return value); the Go twin answered those, and they
	// are also counted in CPU or GPU.
	Errors uint64
}

// LoadError is returned when a policy object is rejected. The previous policy
// stays active.
type LoadError struct {
	Source string // what was being loaded: "file:PATH" or a shipped name
	Kept   string // the policy that stays active
	Err    error  // the cause; wraps ErrBadObject or an *ebpf.VerifierError
}

// maxLogLines bounds the verifier log lines LoadError.Error includes.
const maxLogLines = 40

// Error includes the verifier log (its last maxLogLines lines) when the
// verifier rejected the program; VerifierLog has all of it.
func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy %s rejected, keeping %s: %v", e.Source, e.Kept, e.Err)
	if log := e.VerifierLog(); len(log) > 0 {
		b.WriteString("\nverifier log:\n")
		if len(log) > maxLogLines {
			fmt.Fprintf(&b, "(%d earlier lines omitted)\n", len(log)-maxLogLines)
			log = log[len(log)-maxLogLines:]
		}
		b.WriteString(strings.Join(log, "\n"))
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *LoadError) Unwrap() error { return e.Err }

// VerifierLog returns the kernel verifier's log lines, if the verifier
// rejected the program.
func (e *LoadError) VerifierLog() []string {
	var ve *ebpf.VerifierError
	if errors.As(e.Err, &ve) {
		return ve.Log
	}
	return nil
}

// instance is one loaded policy. Decide holds a reference while it runs it;
// the instance is closed once it is retired and no decision uses it.
type instance struct {
	name   string
	kernel *kernelProg // nil: goFn is the policy
	goFn   Func        // the Go twin, or DefaultPolicy for custom objects
	refs   atomic.Int64
	once   sync.Once
	closed atomic.Bool // set once the instance is released
}

// retiredBias is added to refs on retirement; refs < 0 means retired.
const retiredBias = -1 << 62

func (in *instance) acquire() bool {
	if in.refs.Add(1) < 0 {
		in.release()
		return false
	}
	return true
}

func (in *instance) release() {
	if in.refs.Add(-1) == retiredBias {
		in.close()
	}
}

func (in *instance) retire() {
	if in.refs.Add(retiredBias) == retiredBias {
		in.close()
	}
}

func (in *instance) close() {
	in.once.Do(func() {
		if in.kernel != nil {
			in.kernel.close()
		}
		in.closed.Store(true)
	})
}

// Engine makes placement decisions with a hot-swappable policy. Decide is
// safe for concurrent use and never blocks on a swap; the other methods are
// serialised among themselves.
type Engine struct {
	mu     sync.Mutex // serialises loads, SetParams and Close
	cur    atomic.Pointer[instance]
	params atomic.Pointer[Params]
	bpfErr error // non-nil: BPF unusable, the Go fallback runs
	note   string

	cpu, gpu, errs atomic.Uint64
}

// New starts an engine: it loads the configured policy into the kernel when
// it can and otherwise uses the Go twin of the shipped policy; Status says
// which and why. It fails only on invalid options.
func New(opts Options) (*Engine, error) {
	params := DefaultParams()
	if opts.Params != nil {
		params = *opts.Params
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	name := opts.Policy
	if name == "" {
		name = ShippedDefault
	}
	sp, ok := shipped[name]
	if !ok {
		return nil, fmt.Errorf("policy: unknown shipped policy %q (have %s)", name, strings.Join(Shipped(), ", "))
	}
	e := &Engine{}
	e.params.Store(&params)

	var inst *instance
	if opts.DisableBPF {
		e.bpfErr = errors.New("disabled by configuration")
	} else {
		var err error
		if inst, err = e.loadShipped(name); err != nil {
			e.bpfErr = err
		}
	}
	if e.bpfErr != nil {
		inst = &instance{name: name, goFn: sp.goFn}
		e.note = fmt.Sprintf("using the pure-Go fallback for policy %q: %v", name, e.bpfErr)
	}
	if opts.File != "" {
		src := "file:" + opts.File
		fi, err := e.loadFile(opts.File)
		if err == nil {
			inst.close()
			inst = fi
		} else {
			if e.note != "" {
				e.note += "; "
			}
			e.note += (&LoadError{Source: src, Kept: name, Err: err}).Error()
		}
	}
	e.cur.Store(inst)
	return e, nil
}

// Status reports the active policy, whether it runs in the kernel, and the
// start-up note.
func (e *Engine) Status() Status {
	s := Status{Note: e.note}
	if in := e.cur.Load(); in != nil {
		s.Active, s.Kernel = in.name, in.kernel != nil
	}
	return s
}

// Active returns the name of the active policy ("default", "costaware" or
// "file:PATH"), or "" after Close.
func (e *Engine) Active() string { return e.Status().Active }

// Params returns the tunables in force.
func (e *Engine) Params() Params { return *e.params.Load() }

// Counts returns the number of decisions per side since New.
func (e *Engine) Counts() Counts {
	return Counts{CPU: e.cpu.Load(), GPU: e.gpu.Load(), Errors: e.errs.Load()}
}

func (e *Engine) acquire() *instance {
	for {
		in := e.cur.Load()
		if in == nil || in.acquire() {
			return in
		}
	}
}

// Decide places one batch. It always returns a usable decision: if the BPF
// policy fails (run error or invalid return value) the Go twin answers (the
// default policy for custom objects) and the error says so; after Close the
// default policy answers with ErrClosed. A nil c gets CPU and an error.
func (e *Engine) Decide(c *Context) (Decision, error) {
	if c == nil {
		return Decision{Side: CPU}, errors.New("policy: Decide with a nil context")
	}
	p := e.params.Load()
	in := e.acquire()
	if in == nil {
		return DefaultPolicy(c, p), ErrClosed
	}
	var d Decision
	var err error
	if in.kernel == nil {
		d = in.goFn(c, p)
	} else {
		var raw uint32
		raw, err = in.kernel.run(c)
		if err == nil {
			d, err = DecodeDecision(raw)
		}
		if err != nil {
			e.errs.Add(1)
			d = in.goFn(c, p)
			err = fmt.Errorf("policy %s: %w (answered by the Go %s policy)", in.name, err, goName(in))
		}
	}
	in.release()
	if d.Side == GPU {
		e.gpu.Add(1)
	} else {
		e.cpu.Add(1)
	}
	return d, err
}

func goName(in *instance) string {
	if _, ok := shipped[in.name]; ok {
		return in.name
	}
	return ShippedDefault
}

// SetParams validates p and writes it to the active policy (the BPF map, or
// the Go fallback's copy). Policies loaded later get it too.
func (e *Engine) SetParams(p Params) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.cur.Load()
	if in == nil {
		return ErrClosed
	}
	if in.kernel != nil {
		if err := in.kernel.setParams(p); err != nil {
			return fmt.Errorf("policy %s: write params: %w", in.name, err)
		}
	}
	e.params.Store(&p)
	return nil
}

// LoadShipped makes the named shipped policy active: in the kernel when BPF
// is usable, otherwise its Go twin.
func (e *Engine) LoadShipped(name string) error {
	sp, ok := shipped[name]
	if !ok {
		return fmt.Errorf("policy: unknown shipped policy %q (have %s)", name, strings.Join(Shipped(), ", "))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur.Load() == nil {
		return ErrClosed
	}
	if e.bpfErr != nil {
		e.swap(&instance{name: name, goFn: sp.goFn})
		return nil
	}
	in, err := e.loadShipped(name)
	if err != nil {
		return &LoadError{Source: name, Kept: e.cur.Load().name, Err: err}
	}
	e.swap(in)
	return nil
}

// LoadFile makes the compiled policy object at path active. The object is
// untrusted: it must pass ParseObject's checks and the kernel verifier, else
// a *LoadError (with the verifier log) is returned and the previous policy
// stays active. It needs BPF (see ErrNoBPF).
func (e *Engine) LoadFile(path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.cur.Load()
	if cur == nil {
		return ErrClosed
	}
	in, err := e.loadFile(path)
	if err != nil {
		return &LoadError{Source: "file:" + path, Kept: cur.name, Err: err}
	}
	e.swap(in)
	return nil
}

// swap installs in and retires the previous instance. Callers hold e.mu.
func (e *Engine) swap(in *instance) {
	if old := e.cur.Swap(in); old != nil {
		old.retire()
	}
}

// Close releases the active policy once no decision uses it. Decide keeps
// answering with the Go default policy and ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.cur.Swap(nil); old != nil {
		old.retire()
	}
	return nil
}

// loadShipped loads a shipped policy into the kernel with the current params.
func (e *Engine) loadShipped(name string) (*instance, error) {
	sp := shipped[name]
	if sp.spec == nil {
		return nil, fmt.Errorf("%w: no BPF object is built for this architecture", ErrNoBPF)
	}
	spec, err := sp.spec()
	if err != nil {
		return nil, fmt.Errorf("parse shipped object %q: %w", name, err)
	}
	k, err := e.loadSpec(spec)
	if err != nil {
		return nil, err
	}
	return &instance{name: name, kernel: k, goFn: sp.goFn}, nil
}

// loadFile reads, validates and loads a policy object file.
func (e *Engine) loadFile(path string) (*instance, error) {
	if e.bpfErr != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoBPF, e.bpfErr)
	}
	data, err := readObject(path)
	if err != nil {
		return nil, err
	}
	spec, err := ParseObject(data)
	if err != nil {
		return nil, err
	}
	k, err := e.loadSpec(spec)
	if err != nil {
		return nil, err
	}
	return &instance{name: "file:" + path, kernel: k, goFn: DefaultPolicy}, nil
}

// loadSpec checks, loads and parameterises a policy collection.
func (e *Engine) loadSpec(spec *ebpf.CollectionSpec) (*kernelProg, error) {
	spec, err := checkSpec(spec)
	if err != nil {
		return nil, err
	}
	k, err := loadKernel(spec)
	if err != nil {
		return nil, err
	}
	if err := k.setParams(*e.params.Load()); err != nil {
		k.close()
		return nil, fmt.Errorf("write params: %w", err)
	}
	if err := probeDecisions(k); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

// probeContexts are the batches a policy is tried on before it is loaded:
// the corners of every field and a fixed pseudo-random spread.
var probeContexts = func() []Context {
	cs := []Context{
		{},
		{BatchSize: 1},
		{ModelID: 1, BatchSize: 64, QueueDepth: 64},
		{ModelID: 2, BatchSize: 4096, QueueDepth: 1 << 16, GPUUtilPct: 100, GPUMemFreeMiB: 0, CPUUtilPct: 100},
		{ModelID: 3, BatchSize: 32, GPUMemFreeMiB: 1 << 20, CPUNsPerItem: 1_000_000, GPUNsPerItem: 100, GPUOtherProcs: 8, GPUSelfUtilPct: 100, KernelItems: 32},
		{ModelID: ^uint32(0), BatchSize: ^uint32(0), QueueDepth: ^uint32(0), GPUUtilPct: 100, GPUMemFreeMiB: ^uint32(0), CPUUtilPct: 100,
			CPUNsPerItem: ^uint64(0), GPUNsPerItem: ^uint64(0), GPUOtherProcs: ^uint32(0), GPUSelfUtilPct: 100, KernelItems: ^uint32(0)},
	}
	x := uint64(0x9e3779b97f4a7c15)
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	for i := 0; i < 58; i++ {
		cs = append(cs, Context{
			ModelID: uint32(next() % 8), BatchSize: uint32(1 + next()%2048), QueueDepth: uint32(next() % 4096),
			GPUUtilPct: uint32(next() % 101), GPUMemFreeMiB: uint32(next() % 81920), CPUUtilPct: uint32(next() % 101),
			CPUNsPerItem: next() % 100_000, GPUNsPerItem: next() % 100_000, GPUOtherProcs: uint32(next() % 4),
			GPUSelfUtilPct: uint32(next() % 101), KernelItems: uint32(next() % 64),
		})
	}
	return cs
}()

// probeDecisions runs k on probeContexts and refuses a program that fails
// or returns an invalid decision for any of them: such a policy would
// fail every decision like it (answered by the Go fallback) instead of
// being refused at load with the old policy kept.
func probeDecisions(k *kernelProg) error {
	for i := range probeContexts {
		c := &probeContexts[i]
		raw, err := k.run(c)
		if err == nil {
			_, err = DecodeDecision(raw)
		}
		if err != nil {
			return fmt.Errorf("%w: on a trial batch (model %d, %d items): %w", ErrBadObject, c.ModelID, c.BatchSize, err)
		}
	}
	return nil
}
