#!/bin/busybox sh
# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# phase-dm.sh - the dm-linnos phase of the VM test, sourced by init.sh when
# run.sh packed it (LAKE_VM_PHASE=dm). Two 32 MiB RAM disks (brd), each
# behind a lake_stall target that stalls in bursts (kernel/dm-stall: every
# I/O arriving in a busy interval waits for its end; PERIOD_MS/BUSY_MS
# below; one seed and two slots, so the replicas' stalls are staggered and
# never overlap), mirrored by the linnos target. fio runs random 4 KiB
# reads (READERS jobs of iodepth 4, RATE per second in all: fio's rate
# limiting waits for a job's outstanding I/Os before it sleeps, so one
# held read stops its job, and one job would let a stall hold only a few
# reads) and a background random writer with verify, for RT seconds per
# mode:
#   primary  fio on the first stalling disk alone (no mirror)
#   off      the target, every read to the primary
#   hedge    the target, a second copy after hedge_us
#   fast     the target, LinnOS on the kernel fast path
#   laked    the target, LinnOS through laked (deadline_us)
#   laked-kill  as laked; laked is killed with SIGKILL once 500 reads are
#               done, and restarted after 300 more (then a short run,
#               after-restart, checks the new laked decides again)
#   retrain-run as off, while the restarted laked retrains model 1
#   guard-cap-N, guard-bypass-N  the fast path with revoke_cap 20, then
#               with the accuracy bypass forced on (runs of GUARD_RT s
#               until a stall was seen, after laked; step 2b below)
# Lines for vm_test.go: "LAKEVM: DM-FIO-BEGIN <mode>" fio's JSON
# "LAKEVM: DM-FIO-END <mode> rc=<fio exit status>", "LAKEVM: DM-STATUS
# <mode> <dmsetup status>", "LAKEVM: DM-CHECK <name> ok|FAIL <detail>",
# "LAKEVM: DM-STALLS <mode> ..." (the stall targets' counters),
# "LAKEVM: DM-STATKEY/DM-METRIC <mode> ..." (the target's statistics keys
# and laked's /metrics lines for them), "LAKEVM: DM-RETRAIN <laked log>".
# Uses from init.sh: $LAKED, $M, fail, wait_log.

RT=${DM_RT:-20}
RATE=${DM_RATE:-496}
READERS=${DM_READERS:-16}
GUARD_RT=${DM_GUARD_RT:-6}
PERIOD_MS=12000
BUSY_MS=3000
SECTORS=65536
export DM_DISABLE_UDEV=1
DMS="dmsetup --noudevsync"

dm_check() { # name ok|FAIL detail
	echo "LAKEVM: DM-CHECK $1 $2 $3"
	[ "$2" = ok ] || fail "dm check $1: $3"
}

dm_status() { # mode
	echo "LAKEVM: DM-STATUS $1 $($DMS status ln 2>&1)"
}

dm_stalls() { # mode: the stall targets' counters (cumulative)
	echo "LAKEVM: DM-STALLS $1 s0: $($DMS status s0 2>&1 | cut -d' ' -f4-) s1: $($DMS status s1 2>&1 | cut -d' ' -f4-)"
}

dm_fio() { # mode device [runtime]
	fio --output-format=json --output=/tmp/fio-$1.json --group_reporting \
		--name=reader --filename="$2" --rw=randread --bs=4k --iodepth=4 --numjobs=$READERS --ioengine=libaio \
		--direct=1 --offset=0 --size=16m --time_based --runtime="${3:-$RT}" --rate_iops=$((RATE / READERS)) \
		--norandommap --randrepeat=0 \
		--name=writer --new_group --filename="$2" --rw=randwrite --bs=4k --iodepth=1 --ioengine=libaio \
		--direct=1 --offset=16m --size=16m --time_based --runtime="${3:-$RT}" --rate_iops=100 \
		--verify=crc32c --verify_backlog=16 --verify_fatal=1 --randrepeat=0 >/tmp/fio-$1.out 2>&1
	rc=$?
	echo "LAKEVM: DM-FIO-BEGIN $1"
	cat /tmp/fio-$1.json
	echo "LAKEVM: DM-FIO-END $1 rc=$rc"
	[ $rc -eq 0 ] || { tail -n 20 /tmp/fio-$1.out; fail "fio ($1) exited with $rc"; }
	return $rc
}

dm_counter() { # counter: its value in the target's status
	$DMS status ln | tr ' ' '\n' | sed -n "s/^$1=//p"
}

dm_wait() { # counter min: wait (up to ~60 s) until counter >= min
	i=0
	while [ "$(dm_counter "$1")" -lt "$2" ]; do
		i=$((i + 1))
		if [ $i -gt 300 ]; then
			fail "timed out waiting for $1 >= $2 ($(dm_counter "$1"))"
			return 1
		fi
		sleep 0.2
	done
}

dm_mode() { # mode
	$DMS message ln 0 reset
	$DMS message ln 0 mode "$1" || fail "dmsetup message mode $1"
	dm_fio "$1" /dev/mapper/ln
	dm_status "$1"
	dm_stalls "$1"
}

dm_version() { # the version of the primary's model in the target
	$DMS status ln | tr ' ' '\n' | sed -n 's/^r0=.*,version=\([0-9]*\),.*/\1/p'
}

dm_devkey() { # dm device: its number as the kernel keys it (MAJOR << 20 | MINOR)
	mm=$($DMS info -c --noheadings -o major,minor "$1" | tr -d ' ')
	echo $(((${mm%%:*} << 20) | ${mm##*:}))
}

dm_metrics() { # mode: the target's statistics on laked's /metrics, then its status
	# the target publishes them once a second: wait for one after the
	# run's last read, so both show the same counters
	sleep 2.5
	echo "LAKEVM: DM-STATKEY $1 ln=$(dm_devkey ln) r0=$(dm_devkey s0) r1=$(dm_devkey s1)"
	wget -q -O - http://127.0.0.1:9477/metrics | grep '^lake_kernel_stat{' | sed "s/^/LAKEVM: DM-METRIC $1 /"
	dm_status "$1-metrics"
}

echo "LAKEVM: phase dm-linnos"
for k in dm-mod brd; do
	[ -e $M/kmod/$k.ko ] || { fail "$k.ko missing"; return; }
done
insmod $M/kmod/dm-mod.ko || { fail "insmod dm-mod"; return; }
insmod $M/kmod/brd.ko rd_nr=2 rd_size=$((SECTORS / 2)) || { fail "insmod brd"; return; }
# the laked restarted in step 3 retrains the primary's model (model 1,
# which the target follows) on the reads the target records: s0, created
# first below, is device-mapper minor 0. (Not the first laked: training
# takes the VM's only CPU, which would disturb the timed runs.)
DMMAJ=$(sed -n 's/^ *\([0-9]*\) device-mapper$/\1/p' /proc/devices)
$LAKED >/tmp/laked1.log 2>&1 &
LPID=$!
wait_log 1 'lake_shm: laked attached' $LPID || return
sleep 1
insmod $M/lakelib.ko || { fail "insmod lakelib"; return; }
insmod $M/dm-lake-stall.ko || { fail "insmod dm-lake-stall"; return; }
insmod $M/dm-linnos.ko || { fail "insmod dm-linnos"; return; }
mkdir -p /dev/mapper

# bad table lines get an error, never a target
for t in "linnos /dev/ram0" "linnos /dev/ram0 /dev/ram1 /dev/ram0 /dev/ram1 /dev/ram0" \
	"linnos /dev/ram0 /dev/ram1 mode=warp" "linnos /dev/ram0 /dev/ram1 deadline_us=0" \
	"linnos /dev/ram0 /dev/ram1 revoke_cap=1001" "linnos /dev/ram0 /dev/ram1 all_slow_to=random" "linnos /dev/ram0 /dev/nope" "linnos /dev/ram0 /dev/ram1 bogus=1" \
	"lake_stall /dev/ram0 10 6 1" "lake_stall /dev/ram0 100 10 1 2 2"; do
	if $DMS create bad --table "0 $SECTORS $t" 2>/dev/null; then
		dm_check bad-table FAIL "accepted: $t"
		$DMS remove bad
	fi
done
dm_check bad-tables ok "10 refused"
# a table longer than a replica is refused
if $DMS create bad --table "0 $((SECTORS + 8)) linnos /dev/ram0 /dev/ram1" 2>/dev/null; then
	dm_check too-long FAIL "accepted"
	$DMS remove bad
fi

$DMS create s0 --table "0 $SECTORS lake_stall /dev/ram0 $PERIOD_MS $BUSY_MS 1 0 2" || { fail "create s0"; return; }
$DMS create s1 --table "0 $SECTORS lake_stall /dev/ram1 $PERIOD_MS $BUSY_MS 1 1 2" || { fail "create s1"; return; }
$DMS create ln --table "0 $SECTORS linnos /dev/mapper/s0 /dev/mapper/s1 mode=off slow_us=200000 deadline_us=${DM_DEADLINE_US:-1000} hedge_us=3000 revoke_cap=1000 all_slow_to=least" ||
	{ fail "create ln"; return; }
$DMS mknodes
ls -l /dev/mapper
[ "$(dm_devkey s0)" = $(((DMMAJ << 20) | 0)) ] || fail "s0 is not device-mapper minor 0 ($(dm_devkey s0)): laked retrains another device"

# bad messages get an error and change nothing
for m in "mode warp" "deadline_us -1" "model 7 1" "model all 0" "model all 99" "revoke_cap x" "frobnicate"; do
	# shellcheck disable=SC2086
	if $DMS message ln 0 $m 2>/dev/null; then
		dm_check bad-message FAIL "accepted: $m"
	fi
done
dm_check bad-messages ok "7 refused"
$DMS message ln 0 model all 1 || fail "installing laked model 1"
dm_status install

# 1. the primary alone (its writes go to ram0 only: ram1 is resynced below)
dm_stalls before
dm_fio primary /dev/mapper/s0
dm_stalls primary
$DMS message s0 0 stall off
$DMS message s1 0 stall off
dd if=/dev/ram0 of=/dev/ram1 bs=1M iflag=direct oflag=direct 2>/dev/null || fail "resync ram1"
$DMS message s0 0 stall on
$DMS message s1 0 stall on

# 2. the target in each mode
dm_mode off
dm_mode hedge
dm_mode fast
dm_metrics fast
dm_mode laked
dm_metrics laked

# 2b. the guardrails, on the fast path after the timed runs. Both need
# a stall of the primary during the run, and its stalls come at jittered
# times (up to ~19 s apart): so fio runs GUARD_RT s at a time, again until
# the counter under test moved (at most 4 runs). The revoke cap: at most
# revoke_cap per mille of each window of 1024 reads are revoked, the rest
# are counted as capped. The accuracy bypass: slow_us 1 makes nearly every
# read "slow" for the accuracy check, so the model (trained for 200 ms) is
# measured wrong on nearly every read it predicts fast; with acc_min 1000
# the first window of 256 checked reads turns the bypass on, and the reads
# it would revoke go to the primary, counted as bypassed; acc_min 0 turns
# it off at once. vm_dm_test.go checks the statuses and /metrics.
dm_guard() { # mode counter: fio runs until counter > 0, then status and /metrics
	k=0
	while :; do
		k=$((k + 1))
		dm_fio "$1-$k" /dev/mapper/ln "$GUARD_RT" || return 1
		[ "$(dm_counter "$2")" -gt 0 ] && break
		[ $k -ge 4 ] && break
	done
	dm_status "$1"
	dm_metrics "$1"
}
$DMS message ln 0 mode fast
$DMS message ln 0 revoke_cap 20 || fail "dmsetup message revoke_cap 20"
$DMS message ln 0 reset
echo "LAKEVM: DM-STATUS guard-cap-table $($DMS table ln)"
dm_guard guard-cap capped
$DMS message ln 0 revoke_cap 1000
$DMS message ln 0 slow_us 1
$DMS message ln 0 acc_min 1000 || fail "dmsetup message acc_min 1000"
$DMS message ln 0 reset
echo "LAKEVM: DM-STATUS guard-bypass-table $($DMS table ln)"
dm_guard guard-bypass bypassed
$DMS message ln 0 acc_min 0
dm_status guard-cleared
$DMS message ln 0 slow_us 200000

# 3. laked killed during a run: fio sees no error, the fast path takes
# over, a restarted laked re-attaches and decides again
$DMS message ln 0 reset
$DMS message ln 0 mode laked
dm_fio laked-kill /dev/mapper/ln $((RT + 10)) &
FPID=$!
dm_wait reads 500
dm_status before-kill
kill -KILL $LPID
wait $LPID 2>/dev/null
wait_log 1 'lake_shm: laked detached'
dm_wait reads $(($(dm_counter reads) + 300))
dm_status killed
LAKED_RETRAIN_LINNOS_DEVICES="$DMMAJ:0=1" LAKED_RETRAIN_MIN_SAMPLES=${DM_RETRAIN_MIN:-2000} \
	LAKED_RETRAIN_THRESHOLD_US=200000 LAKED_RETRAIN_FALSE_SUBMIT_COST=50 $LAKED >/tmp/laked2.log 2>&1 &
LPID=$!
wait_log 2 'lake_shm: laked attached' $LPID
dm_status restarted
wait $FPID || fail "fio (laked-kill) failed"
dm_status laked-kill
# reads after the restart reach the new laked again
dm_fio after-restart /dev/mapper/ln 6
dm_status after-restart

# 4. retraining on the target's own records: laked drains the primary's
# read records, trains, checks accuracy and fidelity on the most recent
# reads and replaces model 1; the target fetches the new version
V0=$(dm_version)
dm_status retrain-before
$DMS message ln 0 mode off
dm_fio retrain-run /dev/mapper/ln 12
i=0
while [ "$(dm_version)" = "$V0" ] && [ $i -lt 120 ]; do # training takes the VM's CPU: look once a second
	i=$((i + 1))
	sleep 1
done
grep 'LinnOS retraining' /tmp/laked2.log | sed 's/^/LAKEVM: DM-RETRAIN /'
dm_status retrained

# 5. hostile daemons: answers out of range (fakelaked -badpredict), then
# no answers, lies about model sizes and a scribbled region (fakelaked
# -evil); reads never fail or stall past the deadline, the bad answers are
# counted, a lying model fetch is refused and the installed model stays
kill -TERM $LPID
wait $LPID
wait_log 2 'lake_shm: laked detached'
/bin/fakelaked -badpredict /dev/lake >/tmp/laked-bad.log 2>&1 &
LPID=$!
wait_log 3 'lake_shm: laked attached' $LPID
$DMS message ln 0 reset
$DMS message ln 0 mode laked
$DMS message ln 0 deadline_us 100000 # long enough that the fake daemon's answers arrive
dm_fio hostile-answers /dev/mapper/ln 6
dm_status hostile-answers
kill -KILL $LPID
wait $LPID 2>/dev/null
wait_log 3 'lake_shm: laked detached'
/bin/fakelaked -evil /dev/lake >/tmp/laked-evil.log 2>&1 &
LPID=$!
wait_log 4 'lake_shm: laked attached' $LPID
$DMS message ln 0 reset
$DMS message ln 0 deadline_us 1000
if $DMS message ln 0 model 0 1 2>/dev/null; then
	dm_check hostile-model FAIL "a lying model fetch was accepted"
else
	dm_check hostile-model ok "refused"
fi
dm_fio hostile-evil /dev/mapper/ln 6
dm_status hostile-evil
kill -KILL $LPID
wait $LPID 2>/dev/null
wait_log 4 'lake_shm: laked detached'

# 6. every replica holds the same data
$DMS message s0 0 stall off
$DMS message s1 0 stall off
$DMS remove ln || fail "remove ln"
$DMS remove s0
$DMS remove s1
if cmp /dev/ram0 /dev/ram1 >/dev/null 2>&1; then
	dm_check replicas-identical ok "ram0 = ram1"
else
	dm_check replicas-identical FAIL "$(cmp /dev/ram0 /dev/ram1 2>&1 | head -1)"
fi
rmmod dm-linnos || fail "rmmod dm-linnos"
rmmod dm-lake-stall || fail "rmmod dm-lake-stall"
echo "LAKEVM: phase dm-linnos done"
