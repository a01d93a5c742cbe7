package cuda

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
)

func TestMapEveryCode(t *testing.T) {
	cases := []struct {
		r    Result
		want error
	}{
		{ErrorInvalidValue, backend.ErrInvalidValue},
		{ErrorOutOfMemory, backend.ErrOutOfMemory},
		{ErrorLaunchOutOfRes, backend.ErrOutOfMemory},
		{ErrorInvalidContext, backend.ErrInvalidHandle},
		{ErrorInvalidHandle, backend.ErrInvalidHandle},
		{ErrorContextIsDestroyed, backend.ErrInvalidHandle},
		{ErrorNotFound, backend.ErrNotFound},
		{301, backend.ErrNotFound},
		{ErrorIllegalAddress, backend.ErrLaunchFailed},
		{ErrorLaunchTimeout, backend.ErrLaunchFailed},
		{ErrorAssert, backend.ErrLaunchFailed},
		{ErrorHardwareStack, backend.ErrLaunchFailed},
		{ErrorIllegalInstruction, backend.ErrLaunchFailed},
		{ErrorMisalignedAddress, backend.ErrLaunchFailed},
		{ErrorInvalidAddressSpace, backend.ErrLaunchFailed},
		{ErrorInvalidPC, backend.ErrLaunchFailed},
		{ErrorLaunchFailed, backend.ErrLaunchFailed},
		{ErrorUnknown, backend.ErrLaunchFailed},
		{ErrorECCUncorrectable, backend.ErrLaunchFailed},
		{ErrorNVLinkUncorrectable, backend.ErrLaunchFailed},
		{ErrorNotInitialized, backend.ErrNotSupported},
		{ErrorDeinitialized, backend.ErrNotSupported},
		{ErrorStubLibrary, backend.ErrNotSupported},
		{ErrorDeviceUnavailable, backend.ErrNotSupported},
		{ErrorNoDevice, backend.ErrNotSupported},
		{ErrorInvalidDevice, backend.ErrNotSupported},
		{ErrorNoBinaryForGPU, backend.ErrNotSupported},
		{ErrorUnsupportedPTX, backend.ErrNotSupported},
		{ErrorNotPermitted, backend.ErrNotSupported},
		{ErrorNotSupported, backend.ErrNotSupported},
		{ErrorSystemNotReady, backend.ErrNotSupported},
		{ErrorDriverMismatch, backend.ErrNotSupported},
		{ErrorInvalidImage, backend.ErrInvalidValue},
		{ErrorInvalidPTX, backend.ErrInvalidValue},
		{ErrorHostMemRegistered, backend.ErrInvalidValue},
		{ErrorHostMemNotReg, backend.ErrInvalidValue},
		{ErrorNotReady, backend.ErrInvalidValue},
		{12345, backend.ErrInvalidValue}, // a code this package does not know
		{-1, backend.ErrInvalidValue},
	}
	sentinels := []error{backend.ErrInvalidValue, backend.ErrInvalidHandle, backend.ErrOutOfMemory,
		backend.ErrNotFound, backend.ErrLaunchFailed, backend.ErrContextDestroyed, backend.ErrNotSupported}
	for _, c := range cases {
		err := Map("cuTest", c.r)
		if err == nil {
			t.Fatalf("Map(%v) = nil", c.r)
		}
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == c.want) {
				t.Errorf("Map(%d %v): errors.Is(%v) = %v, want it only for %v", int(c.r), c.r, s, got, c.want)
			}
		}
		if AsResult(err) != c.r {
			t.Errorf("AsResult(Map(%v)) = %v", c.r, AsResult(err))
		}
		if AsResult(fmt.Errorf("wrapped: %w", err)) != c.r {
			t.Errorf("AsResult of a wrapped %v lost the code", c.r)
		}
	}
	if Map("cuTest", Success) != nil {
		t.Fatal("Map(Success) != nil")
	}
	if AsResult(nil) != Success || AsResult(errors.New("x")) != ErrorUnknown {
		t.Fatal("AsResult of nil or a foreign error")
	}
}

// TestFaultedOnlyDriverFaults: only a driver error with a sticky code
// faults a context (Context.do then rebuilds it). The errors the backend
// raises itself before the driver sees a call (an address outside the
// context's allocations, an unknown handle, a launch shape or limit
// refused) are not faults: before, AsResult gave them ErrorUnknown,
// which is sticky, so any refused call destroyed the client's context.
func TestFaultedOnlyDriverFaults(t *testing.T) {
	own := []error{
		fmt.Errorf("cuda: device address %#x is not allocated in this context: %w", 0xdead0000, backend.ErrInvalidValue),
		fmt.Errorf("cuda: unknown stream %d: %w", 7, backend.ErrInvalidHandle),
		fmt.Errorf("cuda: allocating %d bytes: %w", 1<<40, backend.ErrOutOfMemory),
		fmt.Errorf("cuda: kernel lake_fault needs a trusted context: %w", backend.ErrNotSupported),
		backend.ErrLaunchFailed, // a sentinel alone carries no driver status
		errors.New("x"),
		nil,
	}
	for _, err := range own {
		if Faulted(err) {
			t.Errorf("Faulted(%v) = true: a refused call would rebuild the context", err)
		}
	}
	for r := Result(0); r < 1000; r++ {
		err := Map("cuTest", r)
		if Faulted(err) != r.Sticky() || Faulted(fmt.Errorf("wrapped: %w", err)) != r.Sticky() {
			t.Errorf("Faulted(Map(%v)) = %v, want %v", r, Faulted(err), r.Sticky())
		}
	}
	if !Faulted(timeoutError("cuStreamSynchronize", ErrorLaunchTimeout, time.Second)) {
		t.Error("a launch timeout does not fault the context")
	}
}

func TestStickyOnlyKernelFaults(t *testing.T) {
	for r := Result(0); r < 1000; r++ {
		want := r == 214 || r == 220 || r == 700 || r == 702 || (r >= 710 && r <= 719 && r != 711 && r != 712 && r != 713) || r == 999
		if r.Sticky() != want {
			t.Errorf("%d %v: Sticky = %v, want %v", int(r), r, r.Sticky(), want)
		}
	}
}

func TestResultString(t *testing.T) {
	if s := ErrorIllegalAddress.String(); s != "CUDA_ERROR_ILLEGAL_ADDRESS" {
		t.Fatal(s)
	}
	if s := Result(4242).String(); s != "CUresult(4242)" {
		t.Fatal(s)
	}
	e := Map("cuMemAlloc", ErrorOutOfMemory).Error()
	if e != "cuda: cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY: out of device memory" {
		t.Fatal(e)
	}
}
