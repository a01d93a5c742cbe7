#!/usr/bin/env bash
# Installs what lake's build, tests and demo need on a Debian 12 machine
# (run as root). Idempotent: packages already present are not reinstalled.
#
#   clang llvm bpftool      rebuild the eBPF objects (go generate ./policy/ ...);
#                           the committed objects mean plain builds need none
#   gcc libc6-dev           the C layout/agreement tests and the C reference code
#   qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static kmod cpio
#                           the kernel modules' VM test
#   fio                     the block I/O evaluation
#   python3-pip             fetch the CUDA 12 headers and ptxas wheels for the
#                           cuda build variant (deploy/cuda-env.sh, make cuda-check)
#   systemd dkms            systemd-analyze verify on the units; the DKMS build
#                           of the module tree (deploy tests, make install-dkms)
#   dmsetup                 the dm-linnos VM test (packed into the VM with fio)
#   iproute2                ip and tc for the LiteFlow VM phase (veth, netns, netem)
set -euo pipefail

pkgs=(gcc libc6-dev make clang llvm bpftool fio qemu-system-x86 linux-image-amd64 python3-pip
      linux-headers-amd64 busybox-static kmod cpio systemd dkms dmsetup iproute2)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: missing packages ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
	if [[ -x /usr/local/go/bin/go ]]; then
		echo "setup: Go is at /usr/local/go/bin; add it to PATH" >&2
	else
		echo "setup: lake needs Go 1.26 or newer (https://go.dev/dl); Debian 12's golang-go is too old" >&2
	fi
	exit 1
fi
go mod download
echo "setup: ok ($(go version))"
