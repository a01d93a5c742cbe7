# SPDX-License-Identifier: (GPL-2.0 OR MIT)
# liteflow-prep.sh - sourced by run.sh after the initramfs folders exist:
# puts what phase-liteflow.sh needs into the initramfs ($ir): the traffic
# generator (static Go), the Aurora and test snapshots (made here by
# cmd/liteflow), lakectl (static), iproute2's ip and tc with their
# libraries, and the veth and netem modules of kernel $kver; and has laked
# serve the Aurora snapshot as model 3 (models.liteflow).
lf_fail() { echo "run.sh: FAIL: liteflow-prep: $*" >&2; exit 1; }
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$ir/bin/lake-tcpgen" ./cmd/lake-tcpgen) || lf_fail "lake-tcpgen build"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$ir/bin/lakectl" ./cmd/lakectl) || lf_fail "lakectl build"
(cd "$root" && go build -o "$work/liteflow-tool" ./cmd/liteflow) || lf_fail "cmd/liteflow build"
mkdir -p "$ir/etc/lake" "$ir/lib/lake/kmod" "$ir/sbin2"
"$work/liteflow-tool" aurora -o "$ir/etc/lake/aurora.lksn" >/dev/null || lf_fail "aurora snapshot"
"$work/liteflow-tool" toy -o "$ir/etc/lake/toy7.lksn" -gen 7 -seed 7 >/dev/null || lf_fail "toy snapshot"
"$work/liteflow-tool" toy -o "$ir/etc/lake/toy8.lksn" -gen 8 -seed 8 >/dev/null || lf_fail "toy snapshot"
for m in drivers/net/veth.ko net/sched/sch_netem.ko; do
	cp "/lib/modules/$kver/kernel/$m" "$ir/lib/lake/kmod/" || lf_fail "no $m for $kver"
done
for b in /usr/sbin/ip /usr/sbin/tc /sbin/ip /sbin/tc; do
	[ -x "$b" ] || continue
	cp -n "$b" "$ir/sbin2/" 2>/dev/null || true
	for lib in $(ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
		[ -f "$lib" ] || continue
		mkdir -p "$ir$(dirname "$lib")"
		cp -nL "$lib" "$ir$lib"
	done
done
[ -x "$ir/sbin2/ip" ] && [ -x "$ir/sbin2/tc" ] || lf_fail "iproute2's ip and tc are needed (apt-get install iproute2)"
[ "$mode" = laked ] && laked_cmd="$laked_cmd --liteflow-snapshot /etc/lake/aurora.lksn"
