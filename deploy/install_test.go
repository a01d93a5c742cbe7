package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const root = ".."

func run(t *testing.T, timeout time.Duration, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (deploy/setup-debian.sh installs it)", tool)
		}
	}
}

// listModules runs kernel/tools/list-modules.sh on a kernel folder.
func listModules(t *testing.T, kernelDir string) []string {
	t.Helper()
	kernelDir, err := filepath.Abs(kernelDir)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, time.Minute, "/", "sh", filepath.Join(kernelDir, "tools/list-modules.sh"), kernelDir)
	mods := strings.Fields(out)
	slices.Sort(mods)
	return mods
}

// stage stages the kernel sources into a temp dir and returns it.
func stage(t *testing.T, version string) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "lake-"+version)
	run(t, time.Minute, root, "sh", "deploy/stage-kernel-src.sh", dest, version)
	return dest
}

// headers returns a kernel version with headers installed: the running
// kernel's if it has them, else the newest under /lib/modules.
func headers(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("kernel modules are Linux only")
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		kver := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join("/lib/modules", kver, "build/Makefile")); err == nil {
			return kver
		}
	}
	ms, _ := filepath.Glob("/lib/modules/*/build/Makefile")
	if len(ms) == 0 {
		t.Skip("no kernel headers under /lib/modules (apt-get install linux-headers-amd64)")
	}
	slices.Sort(ms)
	return filepath.Base(filepath.Dir(filepath.Dir(ms[len(ms)-1])))
}

// builtModules lists the .ko files under dir as FOLDER/NAME relative to
// dir (what the build really made).
func builtModules(t *testing.T, dir string) []string {
	t.Helper()
	var mods []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(dir, p)
			mods = append(mods, strings.TrimSuffix(rel, ".ko"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(mods)
	return mods
}

// dkmsConf reads a staged dkms.conf the way dkms does (bash sources it
// with kernel_source_dir and dkms_tree set) and returns its variables.
func dkmsConf(t *testing.T, tree string) map[string][]string {
	t.Helper()
	need(t, "bash", "make")
	script := `kernel_source_dir=/KSRC dkms_tree=/DKMS
. "$1/dkms.conf" >/dev/null
for v in PACKAGE_NAME PACKAGE_VERSION AUTOINSTALL CLEAN; do echo "$v=${!v}"; done
for i in "${!BUILT_MODULE_NAME[@]}"; do
	echo "BUILT_MODULE_NAME=${BUILT_MODULE_NAME[$i]}"
	echo "BUILT_MODULE_LOCATION=${BUILT_MODULE_LOCATION[$i]}"
	echo "DEST_MODULE_LOCATION=${DEST_MODULE_LOCATION[$i]}"
done
echo "MAKE=${MAKE[0]}"`
	out := run(t, time.Minute, "/", "bash", "-c", script, "conf", tree)
	vars := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = append(vars[k], v)
	}
	return vars
}

// TestStagedTreeAndDKMSConf checks the staged source tree without
// building: list-modules.sh finds the same modules in it as in the
// checkout (none lost in staging), and dkms.conf, read as dkms reads it,
// builds and installs exactly those, under /extra, with the version set.
func TestStagedTreeAndDKMSConf(t *testing.T) {
	need(t, "sh", "make")
	want := listModules(t, filepath.Join(root, "kernel"))
	if !slices.Contains(want, "shm/lake_shm") {
		t.Fatalf("list-modules.sh does not list shm/lake_shm (the module that creates /dev/lake): %v", want)
	}
	tree := stage(t, "1.2.3")
	if got := listModules(t, filepath.Join(tree, "kernel")); !slices.Equal(got, want) {
		t.Fatalf("staged tree has modules %v, checkout %v", got, want)
	}
	conf := dkmsConf(t, tree)
	if conf["PACKAGE_NAME"][0] != "lake" || conf["PACKAGE_VERSION"][0] != "1.2.3" || conf["AUTOINSTALL"][0] != "yes" {
		t.Fatalf("dkms.conf: %v", conf)
	}
	var got []string
	for i, name := range conf["BUILT_MODULE_NAME"] {
		loc := conf["BUILT_MODULE_LOCATION"][i]
		got = append(got, strings.TrimPrefix(loc, "kernel/")+name)
		if conf["DEST_MODULE_LOCATION"][i] != "/extra" {
			t.Errorf("%s installs to %s, want /extra", name, conf["DEST_MODULE_LOCATION"][i])
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("dkms.conf builds %v, Kbuild %v", got, want)
	}
	if m := conf["MAKE"][0]; m != "make -C /KSRC M=/DKMS/lake/1.2.3/build/kernel modules" {
		t.Fatalf("dkms.conf MAKE[0] = %q", m)
	}
	// A version that would break the paths dkms builds is refused.
	cmd := exec.Command("sh", "deploy/stage-kernel-src.sh", filepath.Join(t.TempDir(), "x"), "1.0/../..")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("staged with a bad version: %s", out)
	}
}

// TestDKMSBuild builds the staged tree with dkms against the installed
// headers, in private dkms and source trees (nothing is installed), and
// checks that it made every module the Kbuild files name.
func TestDKMSBuild(t *testing.T) {
	src := t.TempDir()
	tree := filepath.Join(src, "lake-0.0.1")
	run(t, time.Minute, root, "sh", "deploy/stage-kernel-src.sh", tree, "0.0.1")
	dkmsBuild(t, src, "0.0.1")
}

// dkmsBuild runs dkms add and build on src/lake-VERSION in a private dkms
// tree and checks that dkms built every module list-modules.sh names
// there. It skips where dkms cannot run (no dkms, headers or root).
func dkmsBuild(t *testing.T, src, version string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds kernel modules (-short)")
	}
	need(t, "dkms", "make", "gcc")
	kver := headers(t)
	if os.Geteuid() != 0 {
		t.Skip("dkms build needs root (it signs modules with /var/lib/dkms/mok.key)")
	}
	want := listModules(t, filepath.Join(src, "lake-"+version, "kernel"))
	dk := t.TempDir()
	common := []string{"-m", "lake", "-v", version, "--dkmstree", dk, "--sourcetree", src}
	run(t, time.Minute, "/", "dkms", append([]string{"add"}, common...)...)
	out := run(t, 10*time.Minute, "/", "dkms", append([]string{"build", "-k", kver}, common...)...)
	// dkms copies the built modules into its tree, flat, by name.
	got, err := filepath.Glob(filepath.Join(dk, "lake", version, kver, "*", "module", "*.ko*"))
	if err != nil {
		t.Fatal(err)
	}
	var names, wantNames []string
	for _, g := range got {
		names = append(names, strings.SplitN(filepath.Base(g), ".ko", 2)[0])
	}
	for _, w := range want {
		wantNames = append(wantNames, filepath.Base(w))
	}
	slices.Sort(names)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Fatalf("dkms built %v, want %v\n%s", names, wantNames, out)
	}
}

// TestInstallModules runs `make install-modules` into a DESTDIR against
// the installed headers and checks the installed layout: every module the
// build made is under lib/modules/KVER/extra, depmod resolved their
// dependencies, the modules-load.d entry names an installed module, and
// modprobe finds what it loads at boot.
func TestInstallModules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kernel modules (-short)")
	}
	need(t, "make", "gcc", "depmod", "modprobe")
	kver := headers(t)
	dest := t.TempDir()
	ksrc := filepath.Join(t.TempDir(), "kernel-src")
	run(t, 10*time.Minute, root, "make", "--no-print-directory", "install-modules",
		"DESTDIR="+dest, "KVER="+kver, "KDIR=/lib/modules/"+kver+"/build", "KSRC="+ksrc)
	built := builtModules(t, filepath.Join(ksrc, "kernel"))
	if want := listModules(t, filepath.Join(ksrc, "kernel")); !slices.Equal(built, want) {
		t.Fatalf("the build made %v; list-modules.sh says %v", built, want)
	}
	extra := filepath.Join(dest, "lib/modules", kver, "extra")
	if installed := builtModules(t, extra); !slices.Equal(installed, built) {
		t.Fatalf("installed %v under %s, built %v", installed, extra, built)
	}
	dep, err := os.ReadFile(filepath.Join(dest, "lib/modules", kver, "modules.dep"))
	if err != nil {
		t.Fatalf("depmod did not run: %v", err)
	}
	for _, m := range built {
		if !strings.Contains(string(dep), "extra/"+m+".ko:") {
			t.Errorf("modules.dep lacks extra/%s.ko:\n%s", m, dep)
		}
	}
	// lakelib calls into lake_shm: depmod must have seen it.
	if !strings.Contains(string(dep), "extra/lakelib/lakelib.ko: extra/shm/lake_shm.ko") {
		t.Errorf("modules.dep does not make lakelib depend on lake_shm:\n%s", dep)
	}
	conf, err := os.ReadFile(filepath.Join(dest, "etc/modules-load.d/lake.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var boot []string
	for _, line := range strings.Split(string(conf), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' && line[0] != ';' {
			boot = append(boot, line)
		}
	}
	if !slices.Equal(boot, []string{"lake_shm"}) {
		t.Fatalf("modules-load.d/lake.conf loads %v, want lake_shm", boot)
	}
	for _, m := range boot {
		out := run(t, time.Minute, "/", "modprobe", "--dirname", dest, "--set-version", kver, "--show-depends", m)
		if !strings.Contains(out, filepath.Join(extra, "shm", m+".ko")) {
			t.Errorf("modprobe %s would not load the installed module: %s", m, out)
		}
	}
	// The check can fail: a module that is not installed is not found.
	cmd := exec.Command("modprobe", "--dirname", dest, "--set-version", kver, "--show-depends", "lake_nonexistent")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("modprobe found a module that is not installed: %s", out)
	}
}

// TestInstallDKMSLayout checks `make install-dkms` into a DESTDIR (no
// dkms run there): the sources land in usr/src/lake-VERSION with a
// dkms.conf for that version, and the modules-load.d entry beside them.
func TestInstallDKMSLayout(t *testing.T) {
	need(t, "make", "sh", "bash")
	dest := t.TempDir()
	run(t, time.Minute, root, "make", "--no-print-directory", "install-dkms", "DESTDIR="+dest,
		"LAKE_VERSION=2.0.1", "KSRC="+filepath.Join(t.TempDir(), "kernel-src"))
	tree := filepath.Join(dest, "usr/src/lake-2.0.1")
	if v := dkmsConf(t, tree)["PACKAGE_VERSION"]; len(v) != 1 || v[0] != "2.0.1" {
		t.Fatalf("installed dkms.conf version %v", v)
	}
	if got, want := listModules(t, filepath.Join(tree, "kernel")), listModules(t, filepath.Join(root, "kernel")); !slices.Equal(got, want) {
		t.Fatalf("installed tree has modules %v, checkout %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/modules-load.d/lake.conf")); err != nil {
		t.Fatal(err)
	}
}

// TestMakeInstall runs `make install` into a DESTDIR with PREFIX=/usr and
// no kernel headers (TestInstallModules covers the modules): the binaries,
// the config and the three units land where the units expect them, the
// installed laked reads the installed config, the unit runs the installed
// laked, the missing headers are reported with what to do, and a second
// install keeps an edited config.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands (-short)")
	}
	need(t, "make")
	dest, bin := t.TempDir(), t.TempDir()
	install := func() string {
		return run(t, 10*time.Minute, root, "make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/usr",
			"BIN="+bin, "KDIR=/nonexistent/build", "KVER=0.0-none")
	}
	out := install()
	if !strings.Contains(out, "no kernel modules installed") || !strings.Contains(out, "make install-modules") {
		t.Errorf("make install without headers does not say what to do:\n%s", out)
	}
	for _, f := range []string{"usr/bin/laked", "usr/bin/lakectl"} {
		if fi, err := os.Stat(filepath.Join(dest, f)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, u := range []string{"laked.service", "laked.socket", "laked-admin.socket"} {
		if _, err := os.Stat(filepath.Join(dest, "etc/systemd/system", u)); err != nil {
			t.Error(err)
		}
	}
	svc, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/laked.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "\nExecStart=/usr/bin/laked --config /etc/lake/laked.yaml\n") {
		t.Errorf("installed laked.service does not run PREFIX's laked:\n%s", svc)
	}
	cfg := filepath.Join(dest, "etc/lake/laked.yaml")
	printed := run(t, time.Minute, "/", filepath.Join(dest, "usr/bin/laked"), "--config", cfg, "--print-config")
	if !strings.Contains(printed, "device: auto") {
		t.Errorf("installed laked with the installed config:\n%s", printed)
	}
	// An edited config survives a reinstall.
	if err := os.WriteFile(cfg, []byte("max_clients: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install()
	if data, _ := os.ReadFile(cfg); string(data) != "max_clients: 7\n" {
		t.Errorf("reinstall replaced the edited config: %q", data)
	}
}
