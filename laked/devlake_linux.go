//go:build linux

package laked

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/shm"
)

// The /dev/lake ioctls (kernel/include/lake_dev.h; a host test compiles the header
// and checks that these agree).
const (
	// DevIoctlInfo reads the region geometry (struct lake_dev_info,
	// DevInfo here): _IOR('L', 0x40, struct lake_dev_info).
	DevIoctlInfo = 0x80404c40
	// DevIoctlCQRing rings the completion doorbell: the module reaps the
	// completion ring and completes the kernel callers. _IO('L', 0x41).
	DevIoctlCQRing = 0x4c41
	// DevIoctlCommitWait commits completions (with DevWaitCommit) and
	// waits for the next submission in one call (struct lake_dev_wait,
	// devWait here): _IOWR('L', 0x42, struct lake_dev_wait).
	DevIoctlCommitWait = 0xc0104c42
	// DevIoctlKick ends a DevIoctlCommitWait in progress: _IO('L', 0x43).
	DevIoctlKick = 0x4c43
	// DevWaitCommit is LAKE_WAIT_COMMIT: reap the completion ring first.
	DevWaitCommit = 0x1
)

// devWait is struct lake_dev_wait.
type devWait struct {
	Flags     uint32
	TimeoutMs uint32
	Reaped    int64
}

// maxCommitWait is the longest sleep DevIoctlCommitWait accepts.
const maxCommitWait = 60 * time.Second

// DevInfo is struct lake_dev_info, what DevIoctlInfo returns.
type DevInfo struct {
	RegionSize   uint64 // bytes to map at offset 0
	Version      uint32 // protocol major<<16 | minor
	Flags        uint32 // the region header's flags
	SQEntries    uint32
	CQEntries    uint32
	ArenaSize    uint64
	FeaturesSize uint64
	AttachCount  uint32 // how many times a laked has opened the device
	Reserved     [5]uint32
}

// maxDevRegion bounds the region size laked maps from the device: the
// largest region PROTOCOL.md allows (1 GiB arena + 1 GiB features + rings).
const maxDevRegion = 3 << 30

// devTransport serves the kernel's region through /dev/lake: poll for
// submissions, an ioctl for completions, an eventfd to kick the poller.
type devTransport struct {
	path   string
	fd     int
	kickFd int
	mem    []byte
	region *shm.Region
	info   DevInfo

	mu     sync.Mutex // guards closed against Close racing the doorbells
	closed bool

	// commitWait: the module has DevIoctlCommitWait. Then the session
	// reader defers the completion doorbell of what is posted while it
	// works (active) to its next Flush or wait (dirty): one ioctl that
	// commits and fetches instead of a ring ioctl and a poll.
	commitWait    bool
	active, dirty atomic.Bool
}

// OpenDevice opens the kernel region device at path (normally /dev/lake),
// reads its geometry with DevIoctlInfo, maps the region and validates it
// (the region is untrusted input like any other). Only one laked may have
// the device open at a time; a second open fails with EBUSY.
func OpenDevice(path string) (Transport, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("laked: open device %s: %w", path, err)
	}
	t := &devTransport{path: path, fd: fd, kickFd: -1}
	fail := func(err error) (Transport, error) {
		t.release()
		return nil, fmt.Errorf("laked: device %s: %w", path, err)
	}
	if err := ioctlPtr(fd, DevIoctlInfo, unsafe.Pointer(&t.info)); err != nil {
		return fail(fmt.Errorf("LAKE_IOC_INFO: %w", err))
	}
	info := t.info
	if major := info.Version >> 16; major != uint32(shm.VersionMajor) {
		return fail(fmt.Errorf("protocol version %d.%d, laked speaks %d.x", major, info.Version&0xffff, shm.VersionMajor))
	}
	if info.RegionSize < shm.HeaderSize || info.RegionSize > maxDevRegion || info.RegionSize%4096 != 0 ||
		info.RegionSize > math.MaxInt {
		return fail(fmt.Errorf("region size %d is not a page multiple in [%d, %d]", info.RegionSize, shm.HeaderSize, uint64(maxDevRegion)))
	}
	t.mem, err = unix.Mmap(fd, 0, int(info.RegionSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.mem = nil
		return fail(fmt.Errorf("mmap %d bytes: %w", info.RegionSize, err))
	}
	t.region, err = shm.OpenRegion(t.mem)
	if err != nil {
		return fail(fmt.Errorf("region: %w", err))
	}
	if l := t.region.Layout(); l.RegionSize != info.RegionSize {
		return fail(fmt.Errorf("region header says %d bytes, device says %d", l.RegionSize, info.RegionSize))
	}
	// A module without DevIoctlCommitWait answers ENOTTY: poll and ring.
	probe := devWait{}
	t.commitWait = ioctlPtr(fd, DevIoctlCommitWait, unsafe.Pointer(&probe)) == nil
	t.kickFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.kickFd = -1
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	return t, nil
}

// ioctlPtr issues an ioctl whose argument is a pointer.
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

func (t *devTransport) Region() *shm.Region   { return t.region }
func (t *devTransport) Gone() <-chan struct{} { return nil }
func (t *devTransport) String() string        { return "kernel:" + t.path }

// Kernel reports that the client is the kernel.
func (t *devTransport) Kernel() bool { return true }

// Trusted: the kernel may load arbitrary GPU modules.
func (t *devTransport) Trusted() bool { return true }

// Info returns the geometry the device reported at open.
func (t *devTransport) Info() DevInfo { return t.info }

// WaitSubmissions announces laked in sq_need_wakeup (as shm.Bell.Wait
// does), re-checks ready, and then sleeps in DevIoctlCommitWait (which
// also commits completions whose doorbell was deferred) or, on an older
// module, polls the device, which is readable while a submission is
// published at sq_head; a Kick ends the wait too.
func (t *devTransport) WaitSubmissions(ready func() bool, timeout time.Duration) error {
	need := t.region.SQ().Bell.Waiters
	need.Add(1)
	defer need.Add(^uint32(0))
	if t.commitWait {
		return t.commitAndWait(ready, timeout)
	}
	if ready() {
		return nil
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
		if timeout > time.Duration(math.MaxInt32)*time.Millisecond {
			ms = math.MaxInt32
		}
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return fmt.Errorf("laked: device %s: %w", t.path, errClosedDevice)
	}
	fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}, {Fd: int32(t.kickFd), Events: unix.POLLIN}}
	t.mu.Unlock()
	_, err := unix.Poll(fds, ms)
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("laked: poll %s: %w", t.path, err)
	}
	if fds[1].Revents&unix.POLLIN != 0 {
		var b [8]byte
		_, _ = unix.Read(t.kickFd, b[:]) // reset the counter; EAGAIN if another reader did
	}
	if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		return fmt.Errorf("laked: poll %s: revents %#x", t.path, fds[0].Revents)
	}
	return nil
}

func (t *devTransport) commitAndWait(ready func() bool, timeout time.Duration) error {
	w := devWait{}
	if t.dirty.Swap(false) {
		w.Flags = DevWaitCommit
	}
	if !ready() {
		timeout = min(max(timeout, 0), maxCommitWait)
		w.TimeoutMs = uint32((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	if w.Flags == 0 && w.TimeoutMs == 0 {
		return nil
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return fmt.Errorf("laked: device %s: %w", t.path, errClosedDevice)
	}
	fd := t.fd
	t.mu.Unlock()
	// Close cannot run during the call: only the session reader, which
	// is here, closes the transport (Close after the session ended).
	if err := ioctlPtr(fd, DevIoctlCommitWait, unsafe.Pointer(&w)); err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("laked: device %s: LAKE_IOC_COMMIT_WAIT: %w", t.path, err)
	}
	return nil
}

// BeginWork: the session reader is working; completions posted until
// EndWork may leave their doorbell to its next Flush or wait.
func (t *devTransport) BeginWork() {
	if t.commitWait {
		t.active.Store(true)
	}
}

// EndWork: the reader stopped working; it will Flush or wait next.
func (t *devTransport) EndWork() { t.active.Store(false) }

// Flush rings the completion doorbell if a ring was deferred.
func (t *devTransport) Flush() error {
	if t.dirty.Swap(false) {
		return t.ring()
	}
	return nil
}

var errClosedDevice = errors.New("transport closed")

// NotifyCompletions rings LAKE_IOC_CQ_RING: the module reaps the
// completion ring and completes the kernel callers. While the session
// reader works (BeginWork..EndWork) the ring is deferred to its next Flush
// or wait; a poster that finds the reader no longer working rings itself
// (both sides use sequentially consistent atomics: either the poster sees
// the reader gone or the reader sees dirty).
func (t *devTransport) NotifyCompletions() error {
	if t.commitWait {
		t.dirty.Store(true)
		if t.active.Load() || !t.dirty.Swap(false) {
			return nil
		}
	}
	return t.ring()
}

func (t *devTransport) ring() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("laked: device %s: %w", t.path, errClosedDevice)
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), DevIoctlCQRing, 0); errno != 0 {
		return fmt.Errorf("laked: device %s: LAKE_IOC_CQ_RING: %w", t.path, errno)
	}
	return nil
}

// Kick wakes a WaitSubmissions in progress (a drain, a shutdown).
func (t *devTransport) Kick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.kickFd < 0 {
		return
	}
	if t.commitWait {
		_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), DevIoctlKick, 0)
		return
	}
	one := [8]byte{1}
	_, _ = unix.Write(t.kickFd, one[:])
}

// Close unmaps the region and closes the device: the module then fails
// the kernel callers still waiting and resets the rings for the next
// laked.
func (t *devTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.release()
}

func (t *devTransport) release() error {
	var errs []error
	if t.mem != nil {
		if err := unix.Munmap(t.mem); err != nil {
			errs = append(errs, fmt.Errorf("munmap: %w", err))
		}
		t.mem = nil
	}
	if t.kickFd >= 0 {
		if err := unix.Close(t.kickFd); err != nil {
			errs = append(errs, fmt.Errorf("close eventfd: %w", err))
		}
		t.kickFd = -1
	}
	if t.fd >= 0 {
		if err := unix.Close(t.fd); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", t.path, err))
		}
		t.fd = -1
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("laked: device %s: %w", t.path, err)
	}
	return nil
}
