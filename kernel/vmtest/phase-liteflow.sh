# SPDX-License-Identifier: (GPL-2.0 OR MIT)
# phase-liteflow.sh - the LiteFlow phase of the VM test, sourced by init.sh
# while laked runs (uses its fail, wait_log and $M). Loads
# lake_liteflow.ko, runs lake_lftest.ko (install, refusal, flow cache,
# snapshot replacement under query load) and prints /proc/lake_liteflow.
# vm_test.go (liteflow_test.go) checks the lines.
echo "LAKEVM: phase liteflow"
if insmod $M/lake_liteflow.ko poll_ms=200; then
	insmod $M/lake_lftest.ko || fail "insmod lake_lftest"
	rmmod lake_lftest
	echo "LAKEVM: LITEFLOW-PROC-BEGIN"
	cat /proc/lake_liteflow
	echo "LAKEVM: LITEFLOW-PROC-END"
	rmmod lake_liteflow || fail "rmmod lake_liteflow"
else
	fail "insmod lake_liteflow"
fi
