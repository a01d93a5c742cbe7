package sdnotify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/unitfile"
)

// unitPath is deploy/laked.service, the unit that runs laked under the
// protocol this package speaks.
const unitPath = "../../deploy/laked.service"

// parseUnit reads a unit file into section -> key -> values.
func parseUnit(t *testing.T, path string) unitfile.Unit {
	t.Helper()
	u, err := unitfile.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUnitFileDirectives(t *testing.T) {
	u := parseUnit(t, unitPath)
	svc := u["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	want := map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"ExecStart":               "/usr/local/bin/laked --config /etc/lake/laked.yaml",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"WatchdogSec":             "10",
		"Restart":                 "on-failure",
		"RuntimeDirectory":        "lake",
		"RuntimeDirectoryMode":    "0755",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"CapabilityBoundingSet":   "CAP_BPF CAP_PERFMON CAP_SYS_ADMIN CAP_IPC_LOCK CAP_SYS_RESOURCE",
		"DevicePolicy":            "closed",
		"DeviceAllow":             "/dev/lake rw",
		"LimitMEMLOCK":            "infinity",
		"ReadWritePaths":          "/run/lake",
	}
	for k, v := range want {
		got := svc[k]
		if len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want exactly %q", k, got, v)
		}
	}
	// Hardening that would break laked: BPF needs the bpf() syscall and
	// CAP_BPF, the region needs /dev/lake, reload needs SIGHUP to reach it.
	for _, k := range []string{"PrivateDevices", "SystemCallFilter", "ProtectKernelTunables", "MemoryDenyWriteExecute", "User", "DynamicUser"} {
		if _, ok := svc[k]; ok {
			t.Errorf("[Service] %s is set; it would stop laked loading BPF or opening /dev/lake", k)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}

// TestUnitWantsABuiltModule checks that the modprobe@ units laked.service
// wants name modules the kernel tree builds (an obj-m in a kernel/*/Kbuild),
// so that a renamed module cannot leave the unit loading nothing.
func TestUnitWantsABuiltModule(t *testing.T) {
	kbuilds, err := filepath.Glob("../../kernel/*/Kbuild")
	if err != nil || len(kbuilds) == 0 {
		t.Fatalf("no kernel/*/Kbuild: %v", err)
	}
	built := map[string]bool{}
	for _, p := range kbuilds {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok || !strings.HasPrefix(strings.TrimSpace(strings.TrimRight(k, ":+")), "obj-") {
				continue
			}
			for _, o := range strings.Fields(v) {
				if m, ok := strings.CutSuffix(o, ".o"); ok {
					built[m] = true
				}
			}
		}
	}
	if !built["lake_shm"] {
		t.Fatalf("kernel/*/Kbuild build no lake_shm (found %v)", built)
	}
	u := parseUnit(t, unitPath)
	var wanted []string
	for _, w := range u["Unit"]["Wants"] {
		for _, name := range strings.Fields(w) {
			if m, ok := strings.CutPrefix(name, "modprobe@"); ok {
				wanted = append(wanted, strings.TrimSuffix(m, ".service"))
			}
		}
	}
	if len(wanted) == 0 {
		t.Fatal("laked.service wants no modprobe@ unit: /dev/lake's module is never loaded with it")
	}
	for _, m := range wanted {
		if !built[m] {
			t.Errorf("laked.service wants modprobe@%s.service; the kernel tree builds no %s.ko (it builds %v)", m, m, built)
		}
	}
}

// TestUnitVerify runs systemd-analyze verify on the unit and its socket
// units (with ExecStart
// pointed at an executable that exists here, since laked is not
// installed) and fails on any complaint about it, including the warnings
// systemd-analyze only prints (unknown keys, bad values).
func TestUnitVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd); the directive test still checks the unit")
	}
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand in for laked")
	}
	text := strings.Replace(string(data), "ExecStart=/usr/local/bin/laked", "ExecStart="+truePath, 1)
	if text == string(data) {
		t.Fatal("ExecStart line not found")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "laked.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// The socket units laked.service takes its sockets from
	// (Sockets=) are verified with it, from the same directory.
	units := []string{p}
	sockets, _ := filepath.Glob("../../deploy/*.socket")
	if len(sockets) == 0 {
		t.Fatal("no deploy/*.socket")
	}
	for _, s := range sockets {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		q := filepath.Join(dir, filepath.Base(s))
		if err := os.WriteFile(q, data, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append([]string{"verify"}, units...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	var complaints []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "laked") {
			complaints = append(complaints, line)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The check itself must be able to fail: a typo is reported.
	bad := strings.Replace(text, "Type=notify", "Type=notfy", 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.CommandContext(ctx, tool, "verify", p).CombinedOutput()
	if !strings.Contains(string(out), "notfy") {
		t.Fatalf("systemd-analyze verify did not notice a bad Type=: %s", out)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// ... and in a socket unit.
	sock := units[1]
	data, _ = os.ReadFile(sock)
	if err := os.WriteFile(sock, []byte(strings.Replace(string(data), "\nSocketMode=", "\nSocketMood=", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.CommandContext(ctx, tool, append([]string{"verify"}, units...)...).CombinedOutput()
	if !strings.Contains(string(out), "SocketMood") {
		t.Fatalf("systemd-analyze verify did not notice a bad key in %s: %s", sock, out)
	}
}
