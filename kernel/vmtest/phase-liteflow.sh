# SPDX-License-Identifier: (GPL-2.0 OR MIT)
# phase-liteflow.sh - the LiteFlow phase of the VM test, sourced by init.sh
# while laked runs (uses its fail and $M). vm_test.go (liteflow_test.go)
# checks the lines it prints.
#  1. lake_liteflow.ko, then lake_lftest.ko: installs, refusals, flow
#     cache, snapshot replacement under query load (no laked needed).
#  2. with laked: snapshots loaded by hand into laked (lakectl models load
#     ... liteflow) reach the kernel through model_info/model_fetch.
#  3. with laked: tcp_lake.ko ("lake", Aurora snapshot from laked's model
#     3) on a veth pair between two network namespaces, tc netem changing
#     rate, delay and loss in the middle of each run; four modes compared
#     on throughput, RTT and short-flow completion time before the change,
#     after it, and late after it: cubic; lake with the fixed snapshot in
#     the kernel (no samples to laked); LiteFlow (kernel snapshot, samples
#     to laked, laked adapting and shipping snapshots); userspace-only
#     (decide=userspace: every decision asked of laked's model 3 with a
#     deadline, laked adapting it; misses fall back to Reno). Before each
#     adapting mode the Aurora snapshot is loaded by hand (which pins the
#     app) and the app unpinned with --restart, so both start from the
#     same snapshot. The per-batch error trace of laked's adaptation
#     (lakectl liteflow --trace) and the time of each change are printed
#     for the recovery check.
echo "LAKEVM: phase liteflow"
IP=/sbin2/ip
TC=/sbin2/tc

lf_fetch() {
	lakectl models load 4 liteflow /etc/lake/toy7.lksn >/tmp/lakectl.log 2>&1 || { fail "lakectl models load liteflow"; cat /tmp/lakectl.log; return; }
	insmod $M/lake_lftest.ko mode=fetch model=4 expect=7 || fail "insmod lake_lftest (fetch 7)"
	rmmod lake_lftest
	lakectl models load --replace 4 liteflow /etc/lake/toy8.lksn >/tmp/lakectl.log 2>&1 || { fail "lakectl models load --replace liteflow"; cat /tmp/lakectl.log; return; }
	insmod $M/lake_lftest.ko mode=fetch model=4 expect=8 || fail "insmod lake_lftest (fetch 8)"
	rmmod lake_lftest
}

lf_net() {
	insmod /lib/lake/kmod/veth.ko && insmod /lib/lake/kmod/sch_netem.ko || return 1
	mkdir -p /var/run/netns /run/netns
	$IP netns add srv || return 1
	$IP link add v0 type veth peer name v1 || return 1
	$IP link set v1 netns srv || return 1
	$IP addr add 10.9.0.1/24 dev v0 && $IP link set v0 up || return 1
	$IP netns exec srv $IP addr add 10.9.0.2/24 dev v1 || return 1
	$IP netns exec srv $IP link set v1 up && $IP netns exec srv $IP link set lo up || return 1
	$TC qdisc add dev v0 root netem delay 10ms rate 20mbit limit 50 || return 1
	$IP netns exec srv /bin/lake-tcpgen server -listen 10.9.0.2:5201 >/tmp/tcpgen-server.log 2>&1 &
	LF_SRV=$!
	sleep 1
	return 0
}

# lf_run MODE CC: one run, the path changing from 20 Mbit/s, 10 ms to
# 5 Mbit/s, 40 ms, 1% loss after 5 s; 18 s in all (phase 2 is the last
# 6.5 s: what adaptation has recovered by then)
lf_run() {
	echo "$2" >/proc/sys/net/ipv4/tcp_congestion_control || { fail "sysctl tcp_congestion_control=$2"; return; }
	echo "LAKEVM: liteflow-tcp mode=$1 cc=$(cat /proc/sys/net/ipv4/tcp_congestion_control)"
	$TC qdisc change dev v0 root netem delay 10ms rate 20mbit limit 50
	echo 0 >/sys/module/tcp_lake/parameters/stats
	sleep 1
	/bin/lake-tcpgen client -addr 10.9.0.2:5201 -tag "$1" -duration 18s -change 5s -warmup 1s \
		-change-cmd "$TC qdisc change dev v0 root netem delay 40ms rate 5mbit limit 50 loss 1%" \
		-flow-size 32768 -flow-every 500ms || fail "lake-tcpgen client ($1)"
	echo "LAKEVM: liteflow-tcp stats $1 $(cat /sys/module/tcp_lake/parameters/stats)"
}

# lf_reset: serve the Aurora snapshot again and restart adaptation from
# it (a snapshot loaded by hand pins the app; unpin --restart)
lf_reset() {
	lakectl models load --replace 3 liteflow /etc/lake/aurora.lksn >/tmp/lakectl.log 2>&1 || { fail "lakectl models load --replace 3 (pin)"; cat /tmp/lakectl.log; }
	lakectl liteflow | grep -q "yes (" || fail "loading the Aurora snapshot by hand did not pin the app"
	lakectl liteflow unpin --restart aurora >/tmp/lakectl.log 2>&1 || { fail "lakectl liteflow unpin"; cat /tmp/lakectl.log; }
	echo "LAKEVM: liteflow-tcp reset $(cat /sys/module/tcp_lake/parameters/stats)"
}

# lf_trace MODE: laked's per-batch error trace after MODE's run
lf_trace() {
	echo "LAKEVM: LAKECTL-TRACE-BEGIN $1"
	lakectl liteflow --trace | grep '^trace '
	echo "LAKEVM: LAKECTL-TRACE-END $1"
}

lf_tcp() {
	insmod $M/tcp_lake.ko app_model=3 || { fail "insmod tcp_lake"; return; }
	grep -q lake /proc/sys/net/ipv4/tcp_available_congestion_control || fail "congestion control lake not available"
	i=0
	while ! grep -q 'active_version [1-9]' /sys/module/tcp_lake/parameters/stats; do
		i=$((i + 1))
		[ $i -gt 100 ] && { fail "the Aurora snapshot did not reach the kernel"; break; }
		sleep 0.1
	done
	if ! lf_net; then
		fail "veth/netns/netem setup"
		rmmod tcp_lake
		return
	fi
	lf_run cubic cubic
	echo 0 >/sys/module/tcp_lake/parameters/record
	lf_run fixed lake
	lf_reset
	echo 1 >/sys/module/tcp_lake/parameters/record
	lf_run liteflow lake
	lf_trace liteflow
	lf_reset
	echo userspace >/sys/module/tcp_lake/parameters/decide
	lf_run userspace lake
	lf_trace userspace
	echo snapshot >/sys/module/tcp_lake/parameters/decide
	echo cubic >/proc/sys/net/ipv4/tcp_congestion_control
	kill $LF_SRV 2>/dev/null
	wait $LF_SRV 2>/dev/null
	lakectl liteflow >/tmp/lakectl-liteflow.log 2>&1 || fail "lakectl liteflow"
	echo "LAKEVM: LAKECTL-LITEFLOW-BEGIN"
	cat /tmp/lakectl-liteflow.log
	echo "LAKEVM: LAKECTL-LITEFLOW-END"
	$IP netns del srv
	# closed sockets release the module when they are freed
	i=0
	while ! rmmod tcp_lake 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { fail "rmmod tcp_lake"; break; }
		sleep 0.2
	done
}

if insmod $M/lake_liteflow.ko poll_ms=200; then
	insmod $M/lake_lftest.ko || fail "insmod lake_lftest"
	rmmod lake_lftest
	if [ -x /bin/laked ]; then
		lf_fetch
		lf_tcp
	else
		echo "LAKEVM: liteflow: no laked (fake daemon): fetch and TCP runs skipped"
	fi
	rmmod lake_liteflow || fail "rmmod lake_liteflow"
else
	fail "insmod lake_liteflow"
fi
