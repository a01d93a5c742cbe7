package cpu

import (
	"bytes"
	"fmt"
	"sort"
	"sync"

	"github.com/lakeos/lake/laked/backend"
)

// MaxNameLen is the longest module or kernel name accepted.
const MaxNameLen = 256

// KernelFunc is a Go kernel. It runs once per launch (not once per
// thread): it is expected to cover all grid*block threads itself, usually
// as a plain loop. It must validate its parameters; a returned error
// becomes a backend.ErrLaunchFailed error, and a panic is recovered and
// reported the same way.
type KernelFunc func(k *KernelContext) error

// registry maps module name -> kernel name -> function. Inner maps are
// never mutated after publication (copy on write), so a loaded module can
// keep a reference to the map it saw.
var registry = struct {
	mu   sync.RWMutex
	mods map[string]map[string]KernelFunc
}{mods: map[string]map[string]KernelFunc{}}

// checkName validates a module or kernel name: 1..MaxNameLen printable
// ASCII bytes.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s name: %w", what, backend.ErrInvalidValue)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%s name of %d bytes exceeds %d: %w", what, len(name), MaxNameLen, backend.ErrInvalidValue)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%s name %q: byte %#x at %d is not printable ASCII: %w", what, name, c, i, backend.ErrInvalidValue)
		}
	}
	return nil
}

// RegisterModule registers a module of Go kernels under name. It fails
// with backend.ErrInvalidValue for an invalid or already registered name,
// an empty kernel set, an invalid kernel name or a nil function.
func RegisterModule(name string, kernels map[string]KernelFunc) error {
	if err := checkName("module", name); err != nil {
		return fmt.Errorf("cpu: register module: %w", err)
	}
	if len(kernels) == 0 {
		return fmt.Errorf("cpu: register module %q: no kernels: %w", name, backend.ErrInvalidValue)
	}
	m := make(map[string]KernelFunc, len(kernels))
	for k, fn := range kernels {
		if err := checkName("kernel", k); err != nil {
			return fmt.Errorf("cpu: register module %q: %w", name, err)
		}
		if fn == nil {
			return fmt.Errorf("cpu: register module %q: kernel %q is nil: %w", name, k, backend.ErrInvalidValue)
		}
		m[k] = fn
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if _, dup := registry.mods[name]; dup {
		return fmt.Errorf("cpu: register module %q: already registered: %w", name, backend.ErrInvalidValue)
	}
	registry.mods[name] = m
	return nil
}

// RegisterKernel adds one kernel to module, creating the module if
// needed. Registering a kernel name twice in a module is
// backend.ErrInvalidValue. Contexts that already loaded the module keep
// the kernel set they loaded.
func RegisterKernel(module, kernel string, fn KernelFunc) error {
	if err := checkName("module", module); err != nil {
		return fmt.Errorf("cpu: register kernel: %w", err)
	}
	if err := checkName("kernel", kernel); err != nil {
		return fmt.Errorf("cpu: register kernel in %q: %w", module, err)
	}
	if fn == nil {
		return fmt.Errorf("cpu: register kernel %s.%s: nil function: %w", module, kernel, backend.ErrInvalidValue)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	old := registry.mods[module]
	if _, dup := old[kernel]; dup {
		return fmt.Errorf("cpu: register kernel %s.%s: already registered: %w", module, kernel, backend.ErrInvalidValue)
	}
	m := make(map[string]KernelFunc, len(old)+1)
	for k, f := range old {
		m[k] = f
	}
	m[kernel] = fn
	registry.mods[module] = m
	return nil
}

// RegisteredKernels returns the sorted kernel names of a registered
// module, or nil if no such module is registered.
func RegisteredKernels(module string) []string {
	registry.mu.RLock()
	m := registry.mods[module]
	registry.mu.RUnlock()
	if m == nil {
		return nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// module is a loaded module inside one context.
type module struct {
	name    string
	kernels map[string]KernelFunc     // registry snapshot, read-only
	funcs   map[string]backend.Handle // kernel name -> function handle
}

// function is a kernel looked up in a loaded module.
type function struct {
	module string
	name   string
	fn     KernelFunc
}

// ModuleLoad loads the registered module named by image. Trailing NUL
// bytes are ignored (C callers pass NUL-terminated strings). An empty,
// over-long or non-printable name is backend.ErrInvalidValue; an
// unregistered name is backend.ErrNotFound; more than MaxModules loaded
// modules is backend.ErrOutOfMemory. Loading a module twice yields two
// independent handles, as in CUDA.
func (c *Context) ModuleLoad(image []byte) (backend.Handle, error) {
	if err := c.enter("module load"); err != nil {
		return 0, err
	}
	defer c.leave()
	name := bytes.TrimRight(image, "\x00")
	if len(name) > MaxNameLen {
		return 0, fmt.Errorf("cpu: module load: image of %d bytes is too long for a module name: %w", len(name), backend.ErrInvalidValue)
	}
	if err := checkName("module", string(name)); err != nil {
		return 0, fmt.Errorf("cpu: module load: %w", err)
	}
	registry.mu.RLock()
	kernels := registry.mods[string(name)]
	registry.mu.RUnlock()
	if kernels == nil {
		return 0, fmt.Errorf("cpu: module load %q: no such registered module: %w", name, backend.ErrNotFound)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.modules) >= MaxModules {
		return 0, fmt.Errorf("cpu: module load %q: %d modules loaded is the limit: %w", name, MaxModules, backend.ErrOutOfMemory)
	}
	h, err := c.newHandle(kindModule)
	if err != nil {
		return 0, fmt.Errorf("cpu: module load: %w", err)
	}
	c.modules[h] = &module{name: string(name), kernels: kernels, funcs: map[string]backend.Handle{}}
	return h, nil
}

// ModuleUnload unloads module m; its function handles become invalid.
// Launches already queued keep running.
func (c *Context) ModuleUnload(m backend.Handle) error {
	if err := c.enter("module unload"); err != nil {
		return err
	}
	defer c.leave()
	c.mu.Lock()
	defer c.mu.Unlock()
	mod, ok := c.modules[m]
	if !ok {
		return fmt.Errorf("cpu: module unload %#x: unknown module: %w", uint64(m), backend.ErrInvalidHandle)
	}
	for _, f := range mod.funcs {
		delete(c.funcs, f)
	}
	delete(c.modules, m)
	return nil
}

// ModuleGetFunction returns the handle of kernel name in module m. The
// same name in the same loaded module always yields the same handle.
// An unknown module is backend.ErrInvalidHandle, an invalid name
// backend.ErrInvalidValue, an unknown kernel backend.ErrNotFound.
func (c *Context) ModuleGetFunction(m backend.Handle, name string) (backend.Handle, error) {
	if err := c.enter("module get function"); err != nil {
		return 0, err
	}
	defer c.leave()
	if err := checkName("kernel", name); err != nil {
		return 0, fmt.Errorf("cpu: module get function: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	mod, ok := c.modules[m]
	if !ok {
		return 0, fmt.Errorf("cpu: module get function %q: unknown module %#x: %w", name, uint64(m), backend.ErrInvalidHandle)
	}
	if h, ok := mod.funcs[name]; ok {
		return h, nil
	}
	fn, ok := mod.kernels[name]
	if !ok {
		return 0, fmt.Errorf("cpu: module get function: no kernel %q in module %q: %w", name, mod.name, backend.ErrNotFound)
	}
	h, err := c.newHandle(kindFunction)
	if err != nil {
		return 0, fmt.Errorf("cpu: module get function: %w", err)
	}
	mod.funcs[name] = h
	c.funcs[h] = &function{module: mod.name, name: name, fn: fn}
	return h, nil
}
