#!/bin/sh
# Rebuild lake.ptx from lake.cu (go generate in laked/backend/cuda, or
# make generate). clang compiles the CUDA C for the device only, without
# the CUDA headers or libraries; the PTX (ISA 7.0, sm_80) is JIT-compiled
# by the driver for the GPU it runs on (sm_90 on an H200). NVIDIA's pip
# wheels carry no nvcc front end (nvidia-cuda-nvcc-cu12 ships ptxas and
# libnvvm only), so clang, already needed for the eBPF policies, is the
# compiler; when ptxas is on PATH (make cuda-env puts the wheel's in
# .whl/cuda/bin) the PTX is also assembled for sm_90 to check it.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang}
"$CLANG" --cuda-device-only --cuda-gpu-arch=sm_80 -nocudainc -nocudalib \
	-I../../../../lakelib/include -O3 -ffp-contract=off -S -o lake.ptx.tmp lake.cu
# The header comment names the generator, not the machine.
mv lake.ptx.tmp lake.ptx
if command -v ptxas >/dev/null 2>&1; then
	ptxas -arch=sm_90 lake.ptx -o /dev/null
fi
