//go:build linux

package policy

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// kernelProg is a policy loaded into the kernel.
type kernelProg struct {
	prog   *ebpf.Program
	params *ebpf.Map
	fd     uint32
}

// progRunAttr is the BPF_PROG_TEST_RUN member of union bpf_attr.
type progRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// runBuf is what one BPF_PROG_TEST_RUN call reads; it lives on the caller's
// stack, so a decision allocates nothing.
type runBuf struct {
	attr progRunAttr
	ctx  Context
}

// loadKernel loads the program and params map of a checked spec.
func loadKernel(spec *ebpf.CollectionSpec) (*kernelProg, error) {
	spec = spec.Copy()
	ps := spec.Programs[ProgramName]
	if ps.Type == ebpf.Syscall {
		// The kernel only accepts sleepable syscall programs.
		ps.Flags |= unix.BPF_F_SLEEPABLE
	}
	var objs struct {
		Prog   *ebpf.Program `ebpf:"lake_decide"`
		Params *ebpf.Map     `ebpf:"lake_params"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load into kernel: %w", err)
	}
	fd := objs.Prog.FD()
	if fd < 0 {
		objs.Prog.Close()
		objs.Params.Close()
		return nil, errors.New("load into kernel: program has no file descriptor")
	}
	return &kernelProg{prog: objs.Prog, params: objs.Params, fd: uint32(fd)}, nil
}

// run executes the program once on c with BPF_PROG_TEST_RUN, calling the
// bpf(2) syscall directly: cilium/ebpf's Program.Run allocates and
// serialises the context through reflection on every call.
func (k *kernelProg) run(c *Context) (uint32, error) {
	var b runBuf
	for try := 0; ; try++ {
		b.ctx = *c // a syscall program may write its context back
		b.attr = progRunAttr{
			progFD:    k.fd,
			ctxSizeIn: ContextSize,
			ctxIn:     uint64(uintptr(unsafe.Pointer(&b.ctx))),
		}
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN,
			uintptr(unsafe.Pointer(&b.attr)), unsafe.Sizeof(b.attr))
		if errno == 0 {
			return b.attr.retval, nil
		}
		if (errno == unix.EINTR || errno == unix.EAGAIN) && try < 4 {
			continue
		}
		return 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
	}
}

func (k *kernelProg) setParams(p Params) error {
	return k.params.Update(uint32(0), p.AppendBinary(make([]byte, 0, ParamsSize)), ebpf.UpdateAny)
}

func (k *kernelProg) close() {
	k.prog.Close()
	k.params.Close()
}
