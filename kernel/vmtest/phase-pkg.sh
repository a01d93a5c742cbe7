# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# phase-pkg.sh - sourced by init.sh after the other phases (everything
# unloaded): lake as installed on a real machine. run.sh put the modules
# where `make install-modules` puts them (/lib/modules/KVER/extra, with
# depmod's modules.dep), /etc/modules-load.d/lake.conf and the shipped
# /etc/lake/laked.yaml. This phase loads what modules-load.d names, as
# systemd-modules-load does at boot, checks /dev/lake appears, starts
# laked with the installed config (device: auto, so it must find and
# serve /dev/lake by itself), loads lakelib by name; then starts laked
# before the module, which it must attach once modprobe makes /dev/lake;
# and checks that modprobe follows lakelib's dependency on lake_shm.
#
# The kernel log gets a marker first, so that vm_test.go counts this
# phase's attach apart from the earlier phases'.
echo "LAKEVM: phase installed-layout"
echo "lakevm: phase installed-layout" >/dev/kmsg
pkg_fail() {
	fail "installed-layout: $*"
}
pkg_kver=$(uname -r)
[ -s "/lib/modules/$pkg_kver/modules.dep" ] || pkg_fail "no modules.dep for $pkg_kver"
for m in $(sed 's/[#;].*//' /etc/modules-load.d/lake.conf); do
	modprobe "$m" || pkg_fail "modprobe $m (from modules-load.d)"
done
if [ -c /dev/lake ]; then
	echo "LAKEVM: installed-layout dev $(ls -l /dev/lake)"
else
	pkg_fail "no /dev/lake after loading modules-load.d's modules"
fi

pkg_att=$(dmesg | grep -c 'lake_shm: laked attached')
pkg_det=$(dmesg | grep -c 'lake_shm: laked detached')
if [ -x /bin/laked ]; then
	# what the unit runs, with the VM's two needs from the environment
	# (LAKED_*, as a drop-in's Environment= would set them): the host's
	# LinnOS weights instead of training under TCG, and no BPF
	LAKED_MODELS_LINNOS=/etc/lake/linnos.model LAKED_POLICY_DISABLE_BPF=true \
		/bin/laked --config /etc/lake/laked.yaml >/tmp/laked-installed.log 2>&1 &
else
	/bin/fakelaked /dev/lake >/tmp/laked-installed.log 2>&1 &
fi
pkg_pid=$!
if wait_log $((pkg_att + 1)) 'lake_shm: laked attached' $pkg_pid; then
	modprobe lakelib || pkg_fail "modprobe lakelib"
	kill -TERM $pkg_pid
	wait $pkg_pid 2>/dev/null
	wait_log $((pkg_det + 1)) 'lake_shm: laked detached' || pkg_fail "laked did not detach"
else
	pkg_fail "the installed laked did not attach to /dev/lake"
	kill -KILL $pkg_pid 2>/dev/null
fi
rmmod lakelib 2>/dev/null
rmmod lake_shm || pkg_fail "rmmod lake_shm"

# laked first, the module later (laked.socket started laked before
# lake_shm was loaded): laked finds /dev/lake when it appears
if [ -x /bin/laked ]; then
	LAKED_MODELS_LINNOS=/etc/lake/linnos.model LAKED_POLICY_DISABLE_BPF=true \
		/bin/laked --config /etc/lake/laked.yaml >/tmp/laked-late.log 2>&1 &
	pkg_pid=$!
	i=0
	until grep -q 'serving userspace clients only until it appears' /tmp/laked-late.log; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 $pkg_pid 2>/dev/null; then
			pkg_fail "laked without /dev/lake did not come up"
			break
		fi
		sleep 0.1
	done
	modprobe lake_shm || pkg_fail "modprobe lake_shm (after laked)"
	if wait_log $((pkg_att + 2)) 'lake_shm: laked attached' $pkg_pid; then
		kill -TERM $pkg_pid
		wait $pkg_pid 2>/dev/null
		wait_log $((pkg_det + 2)) 'lake_shm: laked detached' || pkg_fail "laked did not detach"
	else
		pkg_fail "laked did not attach to /dev/lake when it appeared"
		kill -KILL $pkg_pid 2>/dev/null
	fi
	rmmod lake_shm || pkg_fail "rmmod lake_shm"
fi

# modprobe follows modules.dep: lakelib alone brings lake_shm
modprobe lakelib || pkg_fail "modprobe lakelib (nothing loaded)"
grep -q '^lake_shm ' /proc/modules || pkg_fail "modprobe lakelib did not load lake_shm first"
rmmod lakelib || pkg_fail "rmmod lakelib"
rmmod lake_shm || pkg_fail "rmmod lake_shm"
echo "LAKEVM: phase installed-layout done"
