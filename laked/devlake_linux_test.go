//go:build linux

package laked

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDevIoctlNumbersMatchHeader compiles a C program against
// kernel/include/lake_dev.h and checks the ioctl numbers and struct lake_dev_info
// against the Go constants and DevInfo.
func TestDevIoctlNumbersMatchHeader(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot compile kernel/include/lake_dev.h (CI has gcc)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "ioc.c")
	prog := `#include <stdio.h>
#include <stddef.h>
#include "lake_dev.h"
#define OFF(f) printf("off_" #f " %zu\n", offsetof(struct lake_dev_info, f))
int main(void) {
	printf("info %lu\n", (unsigned long)LAKE_IOC_INFO);
	printf("cq_ring %lu\n", (unsigned long)LAKE_IOC_CQ_RING);
	printf("commit_wait %lu\n", (unsigned long)LAKE_IOC_COMMIT_WAIT);
	printf("kick %lu\n", (unsigned long)LAKE_IOC_KICK);
	printf("wait_commit %lu\n", (unsigned long)LAKE_WAIT_COMMIT);
	printf("wait_size %zu\n", sizeof(struct lake_dev_wait));
	printf("wait_off_flags %zu\n", offsetof(struct lake_dev_wait, flags));
	printf("wait_off_timeout_ms %zu\n", offsetof(struct lake_dev_wait, timeout_ms));
	printf("wait_off_reaped %zu\n", offsetof(struct lake_dev_wait, reaped));
	printf("size %zu\n", sizeof(struct lake_dev_info));
	OFF(region_size); OFF(version); OFF(flags); OFF(sq_entries); OFF(cq_entries);
	OFF(arena_size); OFF(features_size); OFF(attach_count); OFF(reserved);
	return 0;
}
`
	if err := os.WriteFile(src, []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ioc")
	if out, err := exec.Command(cc, "-Wall", "-Werror", "-I", filepath.Join("..", "kernel", "include"), "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compiling against kernel/include/lake_dev.h: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		got[k] = n
	}
	var d DevInfo
	var w devWait
	want := map[string]uint64{
		"commit_wait": DevIoctlCommitWait, "kick": DevIoctlKick, "wait_commit": DevWaitCommit,
		"wait_size": uint64(unsafe.Sizeof(w)), "wait_off_flags": uint64(unsafe.Offsetof(w.Flags)),
		"wait_off_timeout_ms": uint64(unsafe.Offsetof(w.TimeoutMs)), "wait_off_reaped": uint64(unsafe.Offsetof(w.Reaped)),
		"info": DevIoctlInfo, "cq_ring": DevIoctlCQRing, "size": uint64(unsafe.Sizeof(d)),
		"off_region_size": uint64(unsafe.Offsetof(d.RegionSize)), "off_version": uint64(unsafe.Offsetof(d.Version)),
		"off_flags": uint64(unsafe.Offsetof(d.Flags)), "off_sq_entries": uint64(unsafe.Offsetof(d.SQEntries)),
		"off_cq_entries": uint64(unsafe.Offsetof(d.CQEntries)), "off_arena_size": uint64(unsafe.Offsetof(d.ArenaSize)),
		"off_features_size": uint64(unsafe.Offsetof(d.FeaturesSize)),
		"off_attach_count":  uint64(unsafe.Offsetof(d.AttachCount)), "off_reserved": uint64(unsafe.Offsetof(d.Reserved)),
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: C says %d (present %v), Go says %d", k, g, ok, w)
		}
	}
}

// TestOpenDeviceErrors checks that OpenDevice refuses what is not a lake
// device with a wrapped error and leaks no descriptor.
func TestOpenDeviceErrors(t *testing.T) {
	_, err := OpenDevice(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: err = %v, want ErrNotExist", err)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)
	_, err = OpenDevice(plain)
	if !errors.Is(err, unix.ENOTTY) {
		t.Errorf("regular file: err = %v, want ENOTTY from LAKE_IOC_INFO", err)
	}
	if !strings.Contains(err.Error(), plain) {
		t.Errorf("error %q does not name the path", err)
	}
	// /dev/null answers the ioctl with ENOTTY too
	if _, err := OpenDevice("/dev/null"); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("/dev/null: err = %v, want ENOTTY", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors %d -> %d: OpenDevice leaked one", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}
