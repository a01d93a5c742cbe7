#!/bin/busybox sh
# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# init.sh - /init of the lake VM test initramfs (packed by run.sh).
# Loads lake_shm.ko, starts laked on /dev/lake, runs lake_selftest.ko,
# kills laked while a kernel caller waits, runs calls against a hostile
# daemon (fakelaked -evil), restarts laked, runs the self-test again, then dumps dmesg between markers and powers off.
# Lines starting with "LAKEVM:" are for run.sh and vm_test.go.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run/lake /tmp
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

LAKED=$(cat /etc/laked_cmd)
M=/lib/lake

fail() {
	echo "LAKEVM: FAIL $*"
}

# wait_log N PATTERN [PID]: wait (up to ~60 s) until dmesg holds N lines
# matching PATTERN; give up at once if process PID has exited
wait_log() {
	i=0
	while [ "$(dmesg | grep -c "$2")" -lt "$1" ]; do
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			fail "process $3 exited while waiting for '$2'"
			return 1
		fi
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			fail "timed out waiting for '$2' x$1"
			return 1
		fi
		sleep 0.1
	done
	return 0
}

finish() {
	echo "LAKEVM: DMESG-BEGIN"
	dmesg
	echo "LAKEVM: DMESG-END"
	for f in /tmp/laked*.log; do
		[ -e "$f" ] || continue
		echo "LAKEVM: LOG-BEGIN $f"
		tail -n 40 "$f"
		echo "LAKEVM: LOG-END $f"
	done
	echo "LAKEVM: END"
	poweroff -f
}

echo "LAKEVM: boot $(uname -r)"
insmod $M/lake_shm.ko || { fail "insmod lake_shm"; finish; }
echo "LAKEVM: dev $(ls -l /dev/lake)"

# LAKE_VM_PHASE=dm (run.sh): only the dm-linnos phase, in its own boot
if [ "$(cat /etc/lake_phase 2>/dev/null)" = dm ]; then
	. /bin/phase-dm.sh
	finish
fi

echo "LAKEVM: phase start-laked"
$LAKED >/tmp/laked1.log 2>&1 &
LPID=$!
wait_log 1 'lake_shm: laked attached' $LPID || finish
sleep 1
insmod $M/lakelib.ko || { fail "insmod lakelib"; finish; }

echo "LAKEVM: phase selftest-1"
insmod $M/lake_selftest.ko || fail "insmod lake_selftest (1)"
rmmod lake_selftest

echo "LAKEVM: phase kill-laked"
kill -STOP $LPID
insmod $M/lake_selftest.ko mode=wait &
IPID=$!
wait_log 1 'lake_selftest: waiting for laked' $IPID
sleep 1
kill -KILL $LPID
wait $IPID || fail "insmod lake_selftest (wait)"
wait $LPID 2>/dev/null
wait_log 1 'lake_shm: laked detached'
rmmod lake_selftest

echo "LAKEVM: phase hostile-laked"
/bin/fakelaked -evil /dev/lake >/tmp/laked-evil.log 2>&1 &
EPID=$!
wait_log 2 'lake_shm: laked attached' $EPID || finish
echo 1000 >/sys/module/lakelib/parameters/timeout_ms
insmod $M/lake_selftest.ko mode=hostile || fail "insmod lake_selftest (hostile)"
rmmod lake_selftest
kill -KILL $EPID
wait $EPID 2>/dev/null
wait_log 2 'lake_shm: laked detached'
echo 10000 >/sys/module/lakelib/parameters/timeout_ms

echo "LAKEVM: phase restart-laked"
# the restarted laked does not spin (idle_spin 0): every wait for the
# kernel's submissions is a commit-and-fetch (LAKE_IOC_COMMIT_WAIT)
LAKED_IDLE_SPIN=0 $LAKED >/tmp/laked2.log 2>&1 &
LPID=$!
wait_log 3 'lake_shm: laked attached' $LPID || finish
sleep 1

echo "LAKEVM: phase selftest-2"
insmod $M/lake_selftest.ko || fail "insmod lake_selftest (2)"
rmmod lake_selftest

# LiteFlow, while laked runs (kernel/vmtest/phase-liteflow.sh)
[ -f /bin/phase-liteflow.sh ] && . /bin/phase-liteflow.sh

echo "LAKEVM: phase stop"
kill -TERM $LPID
wait $LPID
wait_log 3 'lake_shm: laked detached'
rmmod lakelib || fail "rmmod lakelib"
rmmod lake_shm || fail "rmmod lake_shm"
[ -f /bin/phase-pkg.sh ] && . /bin/phase-pkg.sh
finish
