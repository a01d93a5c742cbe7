//go:build cuda

package cuda

// The few driver calls that github.com/mumax/3/cuda/cu lacks
// (cuModuleUnload, cuMemHostRegister) or makes leak (its ModuleLoadData
// and ModuleGetFunction never free the C strings they make). They return
// the CUresult instead of panicking. Every driver symbol the cuda build
// links is listed in driver_symbols.txt, from which the link-time stub
// libcuda.so is generated (stub/gen.sh).

/*
#cgo LDFLAGS: -ldl
#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

// The image is copied and NUL-terminated: PTX is text that the driver
// reads up to a NUL, cubin and fatbin images carry their own sizes.
static CUresult lake_module_load(CUmodule *m, const void *img, size_t n) {
	char *buf = malloc(n + 1);
	if (buf == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	memcpy(buf, img, n);
	buf[n] = 0;
	CUresult r = cuModuleLoadData(m, buf);
	free(buf);
	return r;
}
static CUresult lake_module_unload(uintptr_t m) { return cuModuleUnload((CUmodule)m); }
static CUresult lake_module_get_function(CUfunction *f, uintptr_t m, const char *name) {
	return cuModuleGetFunction(f, (CUmodule)m, name);
}
static CUresult lake_mem_host_register(void *p, size_t n) {
	return cuMemHostRegister(p, n, CU_MEMHOSTREGISTER_PORTABLE);
}
static CUresult lake_mem_host_unregister(void *p) { return cuMemHostUnregister(p); }
static CUresult lake_ctx_set_current(uintptr_t c) { return cuCtxSetCurrent((CUcontext)c); }

// The fake driver's control function (fake/fakecuda.c), found at run
// time: absent from the real driver, where this returns -2.
#include <dlfcn.h>
static int lake_fake_control(const char *key, const char *val) {
	int (*f)(const char *, const char *) = (int (*)(const char *, const char *))dlsym(RTLD_DEFAULT, "lake_fakecuda_control");
	return f ? f(key, val) : -2;
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/lakeos/lake/laked/backend"
	"github.com/mumax/3/cuda/cu"
)

func moduleLoad(image []byte) (cu.Module, Result) {
	var m C.CUmodule
	r := C.lake_module_load(&m, unsafe.Pointer(&image[0]), C.size_t(len(image)))
	return cu.Module(uintptr(unsafe.Pointer(m))), Result(r)
}

func moduleUnload(m cu.Module) Result {
	return Result(C.lake_module_unload(C.uintptr_t(m)))
}

func moduleGetFunction(m cu.Module, name string) (cu.Function, Result) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var f C.CUfunction
	r := C.lake_module_get_function(&f, C.uintptr_t(m), cs)
	return cu.Function(uintptr(unsafe.Pointer(f))), Result(r)
}

func memHostRegister(p unsafe.Pointer, n int) Result {
	return Result(C.lake_mem_host_register(p, C.size_t(n)))
}

func memHostUnregister(p unsafe.Pointer) Result {
	return Result(C.lake_mem_host_unregister(p))
}

// headerResults holds the CUresult values of the pinned cuda.h, for
// TestResultCodesMatchHeader.
var headerResults = map[Result]C.CUresult{
	Success: C.CUDA_SUCCESS, ErrorInvalidValue: C.CUDA_ERROR_INVALID_VALUE,
	ErrorOutOfMemory: C.CUDA_ERROR_OUT_OF_MEMORY, ErrorNotInitialized: C.CUDA_ERROR_NOT_INITIALIZED,
	ErrorDeinitialized: C.CUDA_ERROR_DEINITIALIZED, ErrorStubLibrary: C.CUDA_ERROR_STUB_LIBRARY,
	ErrorDeviceUnavailable: C.CUDA_ERROR_DEVICE_UNAVAILABLE, ErrorNoDevice: C.CUDA_ERROR_NO_DEVICE,
	ErrorInvalidDevice: C.CUDA_ERROR_INVALID_DEVICE, ErrorInvalidImage: C.CUDA_ERROR_INVALID_IMAGE,
	ErrorInvalidContext: C.CUDA_ERROR_INVALID_CONTEXT, ErrorNoBinaryForGPU: C.CUDA_ERROR_NO_BINARY_FOR_GPU,
	ErrorECCUncorrectable: C.CUDA_ERROR_ECC_UNCORRECTABLE, ErrorNVLinkUncorrectable: C.CUDA_ERROR_NVLINK_UNCORRECTABLE,
	ErrorInvalidPTX: C.CUDA_ERROR_INVALID_PTX, ErrorUnsupportedPTX: C.CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
	ErrorInvalidHandle: C.CUDA_ERROR_INVALID_HANDLE, ErrorNotFound: C.CUDA_ERROR_NOT_FOUND,
	ErrorNotReady: C.CUDA_ERROR_NOT_READY, ErrorIllegalAddress: C.CUDA_ERROR_ILLEGAL_ADDRESS,
	ErrorLaunchOutOfRes: C.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, ErrorLaunchTimeout: C.CUDA_ERROR_LAUNCH_TIMEOUT,
	ErrorContextIsDestroyed: C.CUDA_ERROR_CONTEXT_IS_DESTROYED, ErrorAssert: C.CUDA_ERROR_ASSERT,
	ErrorHostMemRegistered: C.CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, ErrorHostMemNotReg: C.CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED,
	ErrorHardwareStack: C.CUDA_ERROR_HARDWARE_STACK_ERROR, ErrorIllegalInstruction: C.CUDA_ERROR_ILLEGAL_INSTRUCTION,
	ErrorMisalignedAddress: C.CUDA_ERROR_MISALIGNED_ADDRESS, ErrorInvalidAddressSpace: C.CUDA_ERROR_INVALID_ADDRESS_SPACE,
	ErrorInvalidPC: C.CUDA_ERROR_INVALID_PC, ErrorLaunchFailed: C.CUDA_ERROR_LAUNCH_FAILED,
	ErrorNotPermitted: C.CUDA_ERROR_NOT_PERMITTED, ErrorNotSupported: C.CUDA_ERROR_NOT_SUPPORTED,
	ErrorSystemNotReady: C.CUDA_ERROR_SYSTEM_NOT_READY, ErrorDriverMismatch: C.CUDA_ERROR_SYSTEM_DRIVER_MISMATCH,
	ErrorUnknown: C.CUDA_ERROR_UNKNOWN,
}

// ctxSetCurrent binds c to the calling OS thread without panicking.
func ctxSetCurrent(c cu.Context) Result {
	return Result(C.lake_ctx_set_current(C.uintptr_t(c)))
}

// streamQuery reports whether st's work has finished (Success),
// is still running (ErrorNotReady), or faulted; it never blocks.
func streamQuery(st cu.Stream) Result { return Result(cu.StreamQuery(st)) }

// FakeDriverControl sets one of the fake CUDA driver's fault injections
// (fake/fakecuda.c, tests only): key "mem" (the device's bytes),
// "fault" or "hang" (a built-in kernel's name: its launches fault, or
// never finish), "refuse_register" ("1": cuMemHostRegister fails); an
// empty value clears it. With any other libcuda (the real driver) it
// changes nothing and returns an error wrapping backend.ErrNotSupported.
func FakeDriverControl(key, val string) error {
	ck, cv := C.CString(key), C.CString(val)
	defer C.free(unsafe.Pointer(ck))
	defer C.free(unsafe.Pointer(cv))
	switch C.lake_fake_control(ck, cv) {
	case 0:
		return nil
	case -2:
		return fmt.Errorf("cuda: the loaded libcuda is not the fake driver: %w", backend.ErrNotSupported)
	default:
		return fmt.Errorf("cuda: fake driver control %q: %w", key, backend.ErrInvalidValue)
	}
}
