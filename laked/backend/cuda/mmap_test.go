//go:build cuda

package cuda

import (
	"testing"

	"golang.org/x/sys/unix"
)

// memfdMap maps n bytes of a memfd shared, as laked maps a client's
// region (a sealed memfd): shmem pages, which the driver can page-lock
// (cuMemHostRegister) whatever the file system of the test's temporary
// folder. A writable shared mapping of a regular file on a disk file
// system may be refused a long-term pin by recent kernels.
func memfdMap(n int) ([]byte, error) {
	fd, err := unix.MemfdCreate("lake-test-region", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(n)); err != nil {
		return nil, err
	}
	return unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func munmap(b []byte) error { return unix.Munmap(b) }

// testMapping is memfdMap(n), unmapped when the test ends.
func testMapping(t testing.TB, n int) []byte {
	t.Helper()
	mem, err := memfdMap(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { munmap(mem) })
	return mem
}

// registeredMapping is testMapping(n) registered with b (RegisterHost),
// unregistered and then unmapped when the test ends.
func registeredMapping(t testing.TB, b *Backend, n int) []byte {
	t.Helper()
	mem := testMapping(t, n)
	unreg, err := b.RegisterHost(mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unreg() })
	return mem
}
