#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# run.sh - build the lake kernel modules against Debian's 6.1 headers,
# pack them with a laked into a busybox initramfs, boot Debian's kernel in
# qemu (TCG) and run the kernel self-test, the laked-kill check, calls
# against a hostile daemon, and the restart check. Prints the serial console; exits 0 only when every check
# passes. kernel/vmtest/vm_test.go runs it and checks the same output.
#
# Usage: kernel/vmtest/run.sh [WORKDIR]      (from anywhere in the checkout)
# Without WORKDIR it uses a new /tmp/lake-vmtest.* directory, removed when
# the test passes.
#
# Environment:
#   LAKE_VM_LAKED   "laked" (default): build ./cmd/laked statically and
#                   run "laked --device /dev/lake"; "fake": run the C test
#                   daemon kernel/tools/fakelaked.c instead.
#   LAKE_VM_LAKED_BIN  a static laked binary to use instead of building
#                   ./cmd/laked (with LAKE_VM_LAKED=laked).
#   LAKE_VM_KVER    kernel version (default: the newest /lib/modules/6.1.*
#                   that has headers and a /boot/vmlinuz-*).
#   LAKE_VM_TIMEOUT seconds the VM may run (default 240).
#   LAKE_VM_ACCEL   qemu accelerator (default tcg).
#   LAKE_VM_PHASE   "base" (default): the phases above; "dm": only the
#                   dm-linnos phase (phase-dm.sh: brd, dm-mod, fio and
#                   dmsetup with their libraries are packed, and laked
#                   serves a model trained by stallmodel/ for the stalls).
#   LAKE_VM_MEM     VM memory in MiB (default 512; 1024 for the dm phase).
#
# Needs: gcc, make, go (for laked), qemu-system-x86_64, busybox (static),
# linux-image-amd64 and linux-headers-amd64 (6.1).
set -eu

die() { echo "run.sh: FAIL: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${LAKE_VM_LAKED:-laked}
timeout_s=${LAKE_VM_TIMEOUT:-240}
accel=${LAKE_VM_ACCEL:-tcg}
phase=${LAKE_VM_PHASE:-base}
case "$phase" in base | dm) ;; *) die "LAKE_VM_PHASE must be base or dm" ;; esac
if [ "$phase" = dm ]; then mem=${LAKE_VM_MEM:-1024}; else mem=${LAKE_VM_MEM:-512}; fi

if [ -n "${LAKE_VM_KVER:-}" ]; then
	kver=$LAKE_VM_KVER
else
	kver=
	for d in /lib/modules/6.1.*; do
		v=$(basename "$d")
		if [ -e "$d/build/Makefile" ] && [ -e "/boot/vmlinuz-$v" ]; then kver=$v; fi
	done
	[ -n "$kver" ] || die "no 6.1 kernel with headers (install linux-image-amd64 linux-headers-amd64)"
fi
kdir=/lib/modules/$kver/build
vmlinuz=/boot/vmlinuz-$kver
[ -e "$kdir/Makefile" ] || die "no headers at $kdir"
[ -r "$vmlinuz" ] || die "cannot read $vmlinuz"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing"
bb=$(command -v busybox) || die "busybox missing"
file_out=$("$bb" --help 2>&1 | head -1)
case "$file_out" in *BusyBox*) ;; *) die "$bb is not busybox" ;; esac

work=${1:-}
own_work=
if [ -z "$work" ]; then
	work=$(mktemp -d /tmp/lake-vmtest.XXXXXX)
	own_work=1 # removed after a pass, kept after a failure
fi
mkdir -p "$work"
echo "run.sh: kernel $kver, laked=$mode, work dir $work"

# 1. modules, built from a copy so that no objects land in the tree
src=$work/src
# every module folder (one with a Kbuild), the shared headers and the top
# level, staged as DKMS, make install-modules and the package get them
"$root/deploy/stage-kernel-src.sh" "$src" 0 || die "staging the module sources failed"
if ! make -s -j"$(nproc)" -C "$kdir" M="$src/kernel" W=1 LAKE_TEST_MODULES=m modules >"$work/kbuild.log" 2>&1; then
	cat "$work/kbuild.log"
	die "module build failed"
fi
if grep -n 'warning:' "$work/kbuild.log"; then
	die "module build printed warnings"
fi
echo "run.sh: modules built without warnings"

# 2. the daemon
cc=${CC:-gcc}
"$cc" -static -O2 -Wall -Wextra -Werror -I"$root/kernel/include" -I"$root/lakelib/include" -I"$root/lakelib/c" \
	-o "$work/fakelaked" "$root/kernel/tools/fakelaked.c" || die "fakelaked build failed"
case "$mode" in
laked)
	if [ -n "${LAKE_VM_LAKED_BIN:-}" ]; then
		cp "$LAKE_VM_LAKED_BIN" "$work/laked" || die "cannot copy $LAKE_VM_LAKED_BIN"
	else
		(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/laked" ./cmd/laked) || die "laked build failed"
	fi
	# LinnOS weights for model 1, trained on the host (laked would
	# otherwise train its built-in model at start, slowly under TCG)
	(cd "$root" && go build -o "$work/linnos-tool" ./cmd/linnos) || die "cmd/linnos build failed"
	if [ "$phase" = dm ]; then
		# the dm phase: a model for the lake_stall schedule of phase-dm.sh
		(cd "$root" && go run ./kernel/vmtest/stallmodel -n 120000 -o "$work/linnos.model") \
			>"$work/linnos-train.log" 2>&1 || { cat "$work/linnos-train.log"; die "stallmodel failed"; }
		cat "$work/linnos-train.log"
	else
		"$work/linnos-tool" train -n 5000 -epochs 1 -o "$work/linnos.model" >"$work/linnos-train.log" 2>&1 ||
			{ cat "$work/linnos-train.log"; die "training the LinnOS weights failed"; }
	fi
	laked_cmd="/bin/laked --device /dev/lake --linnos-weights /etc/lake/linnos.model --no-bpf"
	;;
fake)
	laked_cmd="/bin/fakelaked /dev/lake"
	;;
*) die "LAKE_VM_LAKED must be laked or fake" ;;
esac

# 3. initramfs
ir=$work/initramfs
rm -rf "$ir"
mkdir -p "$ir/bin" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/tmp" "$ir/run/lake" "$ir/lib/lake" "$ir/etc"
cp "$bb" "$ir/bin/busybox"
find "$src/kernel" -name '*.ko' -exec cp {} "$ir/lib/lake/" \;
cp "$work/fakelaked" "$ir/bin/"
[ "$mode" = laked ] && cp "$work/laked" "$ir/bin/"
. "$here/liteflow-prep.sh"
echo "$laked_cmd" >"$ir/etc/laked_cmd"
if [ "$mode" = laked ]; then
	mkdir -p "$ir/etc/lake"
	cp "$work/linnos.model" "$ir/etc/lake/linnos.model"
fi
# the installed layout for phase-pkg.sh: the modules built above installed
# as `make install-modules` does (kbuild modules_install to extra/, depmod),
# modules-load.d, and the shipped laked.yaml
make -s --no-print-directory -C "$root" modules-install KSRC="$src" KDIR="$kdir" KVER="$kver" DESTDIR="$ir" \
	>"$work/modules-install.log" 2>&1 || { cat "$work/modules-install.log"; die "make modules-install failed"; }
mkdir -p "$ir/etc/lake"
cp "$root/deploy/laked.yaml" "$ir/etc/lake/laked.yaml"
cp "$here/phase-pkg.sh" "$ir/bin/phase-pkg.sh"
cp "$here/init.sh" "$ir/init"
echo "$phase" >"$ir/etc/lake_phase"
if [ "$phase" = dm ]; then
	# the dm phase: dm-mod and brd from the VM's kernel, fio and dmsetup
	# with every library they load
	mkdir -p "$ir/lib/lake/kmod"
	for m in kernel/drivers/md/dm-mod kernel/drivers/block/brd; do
		f=/lib/modules/$kver/$m.ko
		if [ -e "$f" ]; then cp "$f" "$ir/lib/lake/kmod/"
		elif [ -e "$f.xz" ]; then xz -dc "$f.xz" >"$ir/lib/lake/kmod/$(basename "$m").ko"
		else die "no $m.ko for $kver"
		fi
	done
	for b in fio dmsetup; do
		p=$(command -v $b) || die "$b missing (deploy/setup-debian.sh installs fio and dmsetup)"
		cp "$p" "$ir/bin/$b"
		for l in $(ldd "$p" | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}'); do
			mkdir -p "$ir$(dirname "$l")"
			cp -L "$l" "$ir$l"
		done
	done
	cp "$here/phase-dm.sh" "$ir/bin/phase-dm.sh"
fi
cp "$here/phase-liteflow.sh" "$ir/bin/"
chmod 755 "$ir/init"
(cd "$ir" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.gz"

# 4. boot
log=$work/console.log
echo "run.sh: booting (accel $accel, limit ${timeout_s}s)"
set +e
timeout "$timeout_s" qemu-system-x86_64 -accel "$accel" -m "$mem" -smp 1 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 rdinit=/init panic=-1 loglevel=4 oops=panic" >"$log" 2>&1
rc=$?
set -e
tr -d '\r' <"$log"
[ "$rc" -eq 124 ] && die "VM did not finish within ${timeout_s}s"
[ "$rc" -eq 0 ] || die "qemu exited with $rc"

# 5. checks (vm_test.go checks the same, with more detail)
clean=$work/console.txt
tr -d '\r' <"$log" >"$clean"
grep -q '^LAKEVM: END' "$clean" || die "the VM did not reach the end of the test"
if [ "$phase" = dm ]; then
	# the table and the comparisons are vm_dm_test.go's
	grep -q '^LAKEVM: phase dm-linnos done' "$clean" || die "the dm-linnos phase did not complete"
	if grep -nE 'WARNING:|BUG:|Oops|Call Trace|general protection|hung_task' "$clean"; then
		die "kernel warning or oops"
	fi
	grep -q '^LAKEVM: FAIL' "$clean" && die "the init script reported a failure"
	[ -n "$own_work" ] && rm -rf "$work"
	echo "run.sh: PASS"
	exit 0
fi
grep -q 'lake_selftest: FAIL' "$clean" && die "a self-test step failed"
[ "$(grep -c 'lake_selftest: start mode=run' "$clean")" -eq 2 ] || die "want two full self-test runs"
[ "$(grep -c 'lake_selftest: DONE pass=[1-9][0-9]* fail=0' "$clean")" -eq 4 ] || die "want four self-test runs without failures"
grep -q 'lake_selftest: PASS hostile-corrupt-ring-refused' "$clean" || die "the hostile-daemon run did not complete"
grep -q 'lake_selftest: PASS laked-gone-error' "$clean" || die "the waiting caller did not get -EPIPE"
if grep -nE 'WARNING:|BUG:|Oops|Call Trace|general protection|hung_task' "$clean"; then
	die "kernel warning or oops"
fi
grep -q '^LAKEVM: FAIL' "$clean" && die "the init script reported a failure"
[ -n "$own_work" ] && rm -rf "$work"
echo "run.sh: PASS"
