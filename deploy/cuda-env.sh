#!/usr/bin/env bash
# Prepares what the cuda build variant needs on a machine without a GPU or
# the CUDA toolkit, in the ignored folder .whl/ (make cuda-env):
#
#   .whl/cuda/include   cuda.h and friends from NVIDIA's pip wheel
#                       nvidia-cuda-runtime-cu12 (pinned below)
#   .whl/cuda/bin       ptxas from nvidia-cuda-nvcc-cu12 (checks the
#                       committed PTX assembles for the H200, sm_90)
#   .whl/stub           the link-time libcuda.so stub (soname libcuda.so.1)
#                       generated from laked/backend/cuda/stub/driver_symbols.txt
#
# The header is CUDA 12 on purpose: github.com/mumax/3/cuda/cu uses the
# older driver signatures (three-argument cuCtxCreate, which cuda.h 12
# maps to cuCtxCreate_v2; CUDA 13's header changed it). It compiles
# against this header with no extra defines; the driver (580 / CUDA 13)
# still exports the _v2 symbols at run time. Idempotent; needs
# python3 -m pip (python3-pip) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME=nvidia-cuda-runtime-cu12==12.4.127
NVCC=nvidia-cuda-nvcc-cu12==12.4.131
W=.whl
stamp="$W/.cuda-env-$RUNTIME-$NVCC"
if [[ ! -f $stamp ]]; then
	rm -rf "$W/cuda" "$W/wheels"
	mkdir -p "$W/wheels" "$W/cuda/bin"
	python3 -m pip download -q --no-deps --only-binary=:all: \
		--platform manylinux2014_x86_64 --python-version 3.11 \
		-d "$W/wheels" "$RUNTIME" "$NVCC"
	python3 - "$W" <<'PY'
import sys, zipfile, glob, os, shutil
w = sys.argv[1]
for whl in glob.glob(os.path.join(w, "wheels", "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            if n.startswith("nvidia/cuda_runtime/include/") and n.endswith(".h"):
                dst = os.path.join(w, "cuda", "include", n[len("nvidia/cuda_runtime/include/"):])
            elif n == "nvidia/cuda_nvcc/bin/ptxas":
                dst = os.path.join(w, "cuda", "bin", "ptxas")
            else:
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(n) as src, open(dst, "wb") as out:
                shutil.copyfileobj(src, out)
os.chmod(os.path.join(w, "cuda", "bin", "ptxas"), 0o755)
PY
	rm -rf "$W/wheels"
	touch "$stamp"
fi
laked/backend/cuda/stub/gen.sh "$W/stub"
echo "cuda-env: $(grep -m1 '#define CUDA_VERSION' $W/cuda/include/cuda.h), stub $W/stub/libcuda.so"
