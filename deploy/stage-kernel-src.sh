#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# stage-kernel-src.sh DEST VERSION - copy the kernel module sources into
# DEST as a self-contained tree: what DKMS gets in /usr/src/lake-VERSION,
# what `make modules`/`make install-modules` build (out of the checkout, so
# no objects land in it), what the Debian package ships, and what the VM
# test (kernel/vmtest/run.sh) builds and boots.
#
#   DEST/dkms.conf                 kernel/dkms.conf with VERSION set
#   DEST/kernel/                   Kbuild, Makefile, include/, tools/list-modules.sh,
#                                  and every module folder (one with a Kbuild)
#   DEST/lakelib/include, lakelib/c  the C shared with userspace (*.h, *.c)
set -eu
[ $# -eq 2 ] || { echo "usage: $0 DEST VERSION" >&2; exit 2; }
dest=$1 version=$2
case $version in
'' | *[!A-Za-z0-9.+~-]*) echo "stage-kernel-src.sh: bad version '$version'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)

rm -rf "$dest"
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
mkdir -p "$dest/kernel/tools" "$dest/lakelib/include" "$dest/lakelib/c"
cp "$root/kernel/Kbuild" "$root/kernel/Makefile" "$dest/kernel/"
cp -r "$root/kernel/include" "$dest/kernel/"
cp "$root/kernel/tools/list-modules.sh" "$dest/kernel/tools/"
for d in "$root"/kernel/*/; do
	[ -f "$d/Kbuild" ] || continue
	n=$(basename "$d")
	cp -r "$d" "$dest/kernel/$n"
	# sources only: no objects from an in-tree build
	find "$dest/kernel/$n" \( -type f ! \( -name Kbuild -o -name Makefile -o -name '*.[ch]' \) \) -o -name '*.mod.c' | xargs -r rm -f
done
cp "$root"/lakelib/include/*.h "$dest/lakelib/include/"
for f in "$root"/lakelib/c/*.[ch]; do
	[ -e "$f" ] && cp "$f" "$dest/lakelib/c/"
done
sed "s/@VERSION@/$version/" "$root/kernel/dkms.conf" >"$dest/dkms.conf"
# every module the Kbuild files name must have come along
"$dest/kernel/tools/list-modules.sh" "$dest/kernel" >/dev/null
