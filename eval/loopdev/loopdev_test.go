package loopdev

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

func TestCreateRejectsBadSize(t *testing.T) {
	for _, n := range []int64{0, -4096, 4097} {
		if _, err := Create(context.Background(), t.TempDir(), Options{SizeBytes: n}); err == nil {
			t.Errorf("size %d accepted", n)
		}
	}
}

func TestCreateDetach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach loop devices (runs in CI as root)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skipf("needs losetup: %v", err)
	}
	d, err := Create(context.Background(), t.TempDir(), Options{SizeBytes: 1 << 20, Fill: true})
	if err != nil {
		t.Fatal(err)
	}
	file, path := d.File, d.Path
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeDevice == 0 {
		d.Detach()
		t.Fatalf("%s: %v %v", path, st, err)
	}
	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("backing file %s still there: %v", file, err)
	}
	out, _ := exec.Command("losetup", "-j", file).CombinedOutput()
	if len(out) != 0 {
		t.Fatalf("loop device still attached: %s", out)
	}
	if err := d.Detach(); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
}
