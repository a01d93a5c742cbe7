#!/bin/sh
# gpu-check.sh [DIR]: the GPU check, run on a GPU machine that has the
# NVIDIA driver but no Go and no network. DIR (default bin/gpu-check)
# holds the cuda-tagged test binaries that `make gpu-check-build` built
# elsewhere. Results go to $OUT (default DIR/out):
#
#   summary.txt      one line per step with its exit status
#   nvidia-smi.txt   the GPU and driver
#   cuda-tests.txt   correctness: vector_add, LinnOS (+1, +2; int and
#                    float) GPU == CPU bit for bit, hostile launches
#                    refused, a faulting kernel isolated to its client,
#                    limits, async copies, host registration, concurrency,
#                    tanh/sigmoid MLPs GPU == CPU bit for bit, the models'
#                    runs paths from a registered mapping, the launch
#                    timeout (then again under the race detector)
#   crossover.md     CPU vs GPU per-batch time for LinnOS, +1, +2 at
#                    batch 1 … 4096 (copies included) and the policy
#                    threshold that follows; crossover.txt is its log
#   nvml.txt         the NVML load source and GPU processes on a real GPU
#   laked.txt        laked's GPU model path end to end (records copied
#                    straight from the client's registered arena)
#
# Every step has its own timeout; they add up to 440 s (7 min 20 s), and
# a step still alive 3 s after its TERM is killed, so even with every
# step timing out the script ends within 458 s, under 8 minutes.
# From this repository with the device tool:
#   make gpu-check-build     (here)
#   run: OUT=$OUT deploy/gpu-check.sh bin/gpu-check   carrying bin/gpu-check
set -u
cd "$(dirname "$0")/.."
DIR=$(cd "${1:-bin/gpu-check}" && pwd)
OUT=${OUT:-$DIR/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
S="$OUT/summary.txt"
: >"$S"
step() { # step NAME SECONDS OUTFILE CMD...
	name=$1 secs=$2 file=$3
	shift 3
	t0=$(date +%s)
	if [ -x "$1" ] || command -v "$1" >/dev/null 2>&1; then
		timeout -k 3 "$secs" "$@" >"$OUT/$file" 2>&1
		rc=$?
	else
		echo "missing: $1" >"$OUT/$file"
		rc=127
	fi
	echo "$name rc=$rc $(($(date +%s) - t0))s" | tee -a "$S"
}
step nvidia-smi 30 nvidia-smi.txt nvidia-smi
ls -l /dev/nvidia* >>"$OUT/nvidia-smi.txt" 2>&1
# Each test binary runs in its package's folder, as go test would. The
# host-emulation tests (OnHost) already ran in CI; they are skipped here.
cd laked/backend/cuda
step cuda-tests 90 cuda-tests.txt "$DIR/cuda.test" -test.v -test.count=1 -test.skip OnHost
step cuda-tests-race 90 cuda-tests-race.txt "$DIR/cuda-race.test" -test.v -test.count=1 -test.run 'TestGPU(Concurrent|FaultIsolated|HostileLaunches|ModelRecoversFromFault|LaunchTimeout|RunsFromRegisteredHost)'
step crossover 150 crossover.txt env LAKE_GPU_CROSSOVER="$OUT" "$DIR/cuda.test" -test.v -test.count=1 -test.run '^TestGPUCrossover$'
cd ../../../policy
step nvml 20 nvml.txt "$DIR/policy.test" -test.v -test.count=1 -test.run 'NVML|ProcStat'
cd ../cmd/laked
step laked 60 laked.txt "$DIR/laked-cuda.test" -test.v -test.count=1 -test.run 'GPU|LoadSources'
echo "done; results in $OUT" | tee -a "$S"
