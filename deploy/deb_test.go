package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDebianPackage builds the package with `make deb`, installs it with
// dpkg into a scratch root (the maintainer scripts see DPKG_ROOT and leave
// this machine alone), and exercises what it installed: the packaged
// laked reads the packaged config, the packaged units verify with
// systemd-analyze against the packaged laked, dkms builds the packaged
// module sources (as root with headers), and removal and purge leave
// nothing behind.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds laked and a package (-short)")
	}
	need(t, "make", "dpkg", "dpkg-deb", "dpkg-query")
	const version = "0.0.7"
	tmp := t.TempDir()
	deb := filepath.Join(tmp, "lake.deb")
	run(t, 10*time.Minute, root, "make", "--no-print-directory", "deb", "LAKE_VERSION="+version,
		"DEB="+deb, "DEB_BIN="+filepath.Join(tmp, "bin"), "KSRC="+filepath.Join(tmp, "ksrc"))

	for field, want := range map[string]string{"Package": "lake", "Version": version, "Depends": "dkms, kmod"} {
		if got := strings.TrimSpace(run(t, time.Minute, "/", "dpkg-deb", "--field", deb, field)); got != want {
			t.Errorf("control %s: %q, want %q", field, got, want)
		}
	}

	r := filepath.Join(tmp, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) string {
		return run(t, 2*time.Minute, "/", "dpkg", append([]string{"--root=" + r, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
	}
	dpkg("--force-depends", "-i", deb)
	if st := run(t, time.Minute, "/", "dpkg-query", "--root="+r, "-W", "-f=${Status} ${Version}", "lake"); st != "install ok installed "+version {
		t.Fatalf("dpkg status after install: %q", st)
	}
	conf := run(t, time.Minute, "/", "dpkg-query", "--root="+r, "-W", "-f=${Conffiles}", "lake")
	for _, f := range []string{"/etc/lake/laked.yaml", "/etc/modules-load.d/lake.conf"} {
		if !strings.Contains(conf, f) {
			t.Errorf("%s is not a conffile: %q", f, conf)
		}
	}

	// The packaged laked and lakectl run, and laked reads the packaged
	// config: the defaults, serving /dev/lake when it exists.
	laked := filepath.Join(r, "usr/bin/laked")
	out := run(t, time.Minute, "/", laked, "--config", filepath.Join(r, "etc/lake/laked.yaml"), "--print-config")
	for _, want := range []string{"socket: /run/lake/laked.sock", "device: auto", "admin_socket: /run/lake/laked-admin.sock"} {
		if !strings.Contains(out, want) {
			t.Errorf("packaged laked --print-config lacks %q:\n%s", want, out)
		}
	}
	run(t, time.Minute, "/", filepath.Join(r, "usr/bin/lakectl"), "--help")

	// The packaged units name the packaged laked and verify.
	units := filepath.Join(r, "lib/systemd/system")
	svc, err := os.ReadFile(filepath.Join(units, "laked.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "\nExecStart=/usr/bin/laked ") {
		t.Fatalf("packaged laked.service does not run /usr/bin/laked")
	}
	if tool, err := exec.LookPath("systemd-analyze"); err == nil {
		vdir := t.TempDir()
		var files []string
		for _, u := range []string{"laked.service", "laked.socket", "laked-admin.socket"} {
			data, err := os.ReadFile(filepath.Join(units, u))
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(data), "ExecStart=/usr/bin/laked", "ExecStart="+laked)
			p := filepath.Join(vdir, u)
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
		cmd := exec.Command(tool, append([]string{"verify"}, files...)...)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "laked") {
			t.Errorf("systemd-analyze verify of the packaged units: %v\n%s", err, out)
		}
	}

	// The packaged module sources build with dkms.
	t.Run("dkms", func(t *testing.T) { dkmsBuild(t, filepath.Join(r, "usr/src"), version) })

	dpkg("-P", "lake")
	if st, _ := exec.Command("dpkg-query", "--root="+r, "-W", "-f=${Status}", "lake").Output(); strings.Contains(string(st), "installed") {
		t.Fatalf("dpkg status after purge: %q", st)
	}
	for _, p := range []string{"usr/bin/laked", "etc/lake/laked.yaml", "usr/src/lake-" + version, "lib/systemd/system/laked.service"} {
		if _, err := os.Stat(filepath.Join(r, p)); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
}
