#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# list-modules.sh [KERNEL_DIR] - print every module the top-level Kbuild
# builds, one per line as FOLDER/NAME relative to KERNEL_DIR (default: the
# kernel/ folder this script is in), e.g. "shm/lake_shm". make reads each
# Kbuild's obj-m itself, descending into the folders it names, so a new
# module folder added to kernel/Kbuild is listed with no change here.
# dkms.conf and the install tests use it instead of a hard-coded list.
set -eu
k=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -f "$k/Kbuild" ] || { echo "list-modules.sh: no Kbuild in $k" >&2; exit 1; }

# objs KBUILD SRC: the obj-m of one Kbuild file
objs() {
	printf 'lake-list-objs: ; @echo $(obj-m)\n' |
		make -s --no-print-directory -f "$1" -f - src="$2" obj="$2" lake-list-objs
}

# walk FOLDER: modules of FOLDER/Kbuild ("" for the top level)
walk() {
	[ -f "$k/${1}Kbuild" ] || { echo "list-modules.sh: no Kbuild in $k/$1" >&2; exit 1; }
	list=$(objs "$k/${1}Kbuild" "$k/$1") # set -e: a make error stops here
	for o in $list; do
		case $o in
		*/) walk "$1$o" ;;
		*.o) echo "$1${o%.o}" ;;
		esac
	done
}
walk ""
