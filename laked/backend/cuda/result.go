package cuda

import (
	"errors"
	"fmt"

	"github.com/lakeos/lake/laked/backend"
)

// Result is a CUDA driver status (CUresult). The values are the driver
// ABI's and do not change between releases; the cuda-tagged test
// TestResultCodesMatchHeader checks them against the pinned cuda.h.
type Result int

// The CUresult values this package distinguishes. Every other non-zero
// value maps to backend.ErrLaunchFailed or backend.ErrInvalidValue by
// class (see Map).
const (
	Success                  Result = 0
	ErrorInvalidValue        Result = 1
	ErrorOutOfMemory         Result = 2
	ErrorNotInitialized      Result = 3
	ErrorDeinitialized       Result = 4
	ErrorStubLibrary         Result = 34
	ErrorDeviceUnavailable   Result = 46
	ErrorNoDevice            Result = 100
	ErrorInvalidDevice       Result = 101
	ErrorInvalidImage        Result = 200
	ErrorInvalidContext      Result = 201
	ErrorNoBinaryForGPU      Result = 209
	ErrorECCUncorrectable    Result = 214
	ErrorInvalidPTX          Result = 218
	ErrorNVLinkUncorrectable Result = 220
	ErrorUnsupportedPTX      Result = 222
	ErrorInvalidHandle       Result = 400
	ErrorNotFound            Result = 500
	ErrorNotReady            Result = 600
	ErrorIllegalAddress      Result = 700
	ErrorLaunchOutOfRes      Result = 701
	ErrorLaunchTimeout       Result = 702
	ErrorContextIsDestroyed  Result = 709
	ErrorAssert              Result = 710
	ErrorHostMemRegistered   Result = 712
	ErrorHostMemNotReg       Result = 713
	ErrorHardwareStack       Result = 714
	ErrorIllegalInstruction  Result = 715
	ErrorMisalignedAddress   Result = 716
	ErrorInvalidAddressSpace Result = 717
	ErrorInvalidPC           Result = 718
	ErrorLaunchFailed        Result = 719
	ErrorNotPermitted        Result = 800
	ErrorNotSupported        Result = 801
	ErrorSystemNotReady      Result = 802
	ErrorDriverMismatch      Result = 803
	ErrorUnknown             Result = 999
)

var resultNames = map[Result]string{
	Success: "CUDA_SUCCESS", ErrorInvalidValue: "CUDA_ERROR_INVALID_VALUE",
	ErrorOutOfMemory: "CUDA_ERROR_OUT_OF_MEMORY", ErrorNotInitialized: "CUDA_ERROR_NOT_INITIALIZED",
	ErrorDeinitialized: "CUDA_ERROR_DEINITIALIZED", ErrorStubLibrary: "CUDA_ERROR_STUB_LIBRARY",
	ErrorDeviceUnavailable: "CUDA_ERROR_DEVICE_UNAVAILABLE", ErrorNoDevice: "CUDA_ERROR_NO_DEVICE",
	ErrorInvalidDevice: "CUDA_ERROR_INVALID_DEVICE", ErrorInvalidImage: "CUDA_ERROR_INVALID_IMAGE",
	ErrorInvalidContext: "CUDA_ERROR_INVALID_CONTEXT", ErrorNoBinaryForGPU: "CUDA_ERROR_NO_BINARY_FOR_GPU",
	ErrorECCUncorrectable: "CUDA_ERROR_ECC_UNCORRECTABLE", ErrorNVLinkUncorrectable: "CUDA_ERROR_NVLINK_UNCORRECTABLE",
	ErrorInvalidPTX: "CUDA_ERROR_INVALID_PTX", ErrorUnsupportedPTX: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	ErrorInvalidHandle: "CUDA_ERROR_INVALID_HANDLE", ErrorNotFound: "CUDA_ERROR_NOT_FOUND",
	ErrorNotReady: "CUDA_ERROR_NOT_READY", ErrorIllegalAddress: "CUDA_ERROR_ILLEGAL_ADDRESS",
	ErrorLaunchOutOfRes: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", ErrorLaunchTimeout: "CUDA_ERROR_LAUNCH_TIMEOUT",
	ErrorContextIsDestroyed: "CUDA_ERROR_CONTEXT_IS_DESTROYED", ErrorAssert: "CUDA_ERROR_ASSERT",
	ErrorHostMemRegistered: "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", ErrorHostMemNotReg: "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
	ErrorHardwareStack: "CUDA_ERROR_HARDWARE_STACK_ERROR", ErrorIllegalInstruction: "CUDA_ERROR_ILLEGAL_INSTRUCTION",
	ErrorMisalignedAddress: "CUDA_ERROR_MISALIGNED_ADDRESS", ErrorInvalidAddressSpace: "CUDA_ERROR_INVALID_ADDRESS_SPACE",
	ErrorInvalidPC: "CUDA_ERROR_INVALID_PC", ErrorLaunchFailed: "CUDA_ERROR_LAUNCH_FAILED",
	ErrorNotPermitted: "CUDA_ERROR_NOT_PERMITTED", ErrorNotSupported: "CUDA_ERROR_NOT_SUPPORTED",
	ErrorSystemNotReady: "CUDA_ERROR_SYSTEM_NOT_READY", ErrorDriverMismatch: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
	ErrorUnknown: "CUDA_ERROR_UNKNOWN",
}

// String returns the cuda.h name, or "CUresult(n)".
func (r Result) String() string {
	if s, ok := resultNames[r]; ok {
		return s
	}
	return fmt.Sprintf("CUresult(%d)", int(r))
}

// Sticky reports whether r leaves the CUDA context unusable: every later
// call in it fails, so the context must be destroyed and rebuilt. These
// are the errors the CUDA documentation calls persistent: faults raised
// by a kernel while it runs, and the uncorrectable ECC and NVLink errors
// (214, 220) that cuStreamQuery reports for work that met them.
func (r Result) Sticky() bool {
	switch r {
	case ErrorECCUncorrectable, ErrorNVLinkUncorrectable,
		ErrorIllegalAddress, ErrorLaunchTimeout, ErrorAssert, ErrorHardwareStack,
		ErrorIllegalInstruction, ErrorMisalignedAddress, ErrorInvalidAddressSpace,
		ErrorInvalidPC, ErrorLaunchFailed, ErrorUnknown:
		return true
	}
	return false
}

// Error is a failed driver call. It unwraps to the backend sentinel that
// Map chose, so laked turns it into a protocol status with errors.Is.
type Error struct {
	Op     string // the driver call, e.g. "cuMemAlloc"
	Code   Result
	Reason error // a backend sentinel
}

func (e *Error) Error() string {
	return fmt.Sprintf("cuda: %s: %s: %v", e.Op, e.Code, e.Reason)
}

// Unwrap returns the backend sentinel.
func (e *Error) Unwrap() error { return e.Reason }

// Map turns a driver status into nil (success) or an *Error wrapping one
// of the backend sentinels:
//
//   - out of memory (2) and out of launch resources (701): ErrOutOfMemory;
//   - unknown handles, a destroyed or foreign context (201, 400, 709):
//     ErrInvalidHandle;
//   - a symbol or file that is not there (500, 301): ErrNotFound;
//   - a fault while a kernel ran (every Sticky code): ErrLaunchFailed;
//   - no driver, no device, a stub library, an image the GPU cannot run,
//     an operation this device or driver refuses (3, 4, 34, 46, 100, 101,
//     209, 222, 800, 801, 802, 803): ErrNotSupported;
//   - everything else, including a bad image (200, 218) and any code this
//     package does not know: ErrInvalidValue.
func Map(op string, r Result) error {
	if r == Success {
		return nil
	}
	return &Error{Op: op, Code: r, Reason: reason(r)}
}

func reason(r Result) error {
	switch {
	case r == ErrorOutOfMemory || r == ErrorLaunchOutOfRes:
		return backend.ErrOutOfMemory
	case r == ErrorInvalidContext || r == ErrorInvalidHandle || r == ErrorContextIsDestroyed:
		return backend.ErrInvalidHandle
	case r == ErrorNotFound || r == 301:
		return backend.ErrNotFound
	case r.Sticky():
		return backend.ErrLaunchFailed
	}
	switch r {
	case ErrorNotInitialized, ErrorDeinitialized, ErrorStubLibrary, ErrorDeviceUnavailable,
		ErrorNoDevice, ErrorInvalidDevice, ErrorNoBinaryForGPU, ErrorUnsupportedPTX,
		ErrorNotPermitted, ErrorNotSupported, ErrorSystemNotReady, ErrorDriverMismatch:
		return backend.ErrNotSupported
	}
	return backend.ErrInvalidValue
}

// Faulted reports whether err is a driver error that leaves the CUDA
// context unusable (an *Error, wrapped or not, with a Sticky code): the
// context must be torn down and rebuilt. An error this package raises
// itself before asking the driver (a refused address, handle, launch
// shape or limit) carries no driver status and is never a fault, so it
// costs the client only that call, not its context.
func Faulted(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code.Sticky()
}

// AsResult extracts the driver status from an error returned by this
// package (Success when err is nil, ErrorUnknown when it carries none;
// whether an error faulted the context is Faulted's to say, not
// AsResult(err).Sticky()).
func AsResult(err error) Result {
	if err == nil {
		return Success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ErrorUnknown
}
