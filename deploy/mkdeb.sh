#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0 OR MIT)
#
# mkdeb.sh OUT.deb VERSION BINDIR - build lake's Debian package with
# dpkg-deb (no debhelper): laked and lakectl from BINDIR in /usr/bin, the
# systemd units in /lib/systemd/system (ExecStart=/usr/bin/laked), the
# config in /etc/lake, the modules-load.d entry, and the kernel module
# sources in /usr/src/lake-VERSION for DKMS (deploy/stage-kernel-src.sh),
# which the postinst builds for the running kernel and DKMS for every
# kernel installed later. `make deb` runs it.
#
# The maintainer scripts leave the live system alone when DPKG_ROOT is set
# (dpkg --root ... --force-script-chrootless), which is how the test
# installs the package into a scratch root.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 OUT.deb VERSION BINDIR" >&2; exit 2; }
out=$1 version=$2 bin=$3
case $version in
[0-9]*) ;;
*) echo "mkdeb.sh: version '$version' must start with a digit" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
for b in laked lakectl; do
	[ -x "$bin/$b" ] || { echo "mkdeb.sh: no $bin/$b (make build)" >&2; exit 1; }
done
arch=$(dpkg --print-architecture)

pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
chmod 0755 "$pkg"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/lake" "$pkg/etc/modules-load.d" "$pkg/usr/src"
install -m 0755 "$bin/laked" "$bin/lakectl" "$pkg/usr/bin/"
sed 's|/usr/local/bin/laked|/usr/bin/laked|' "$here/laked.service" >"$pkg/lib/systemd/system/laked.service"
install -m 0644 "$here/laked.socket" "$here/laked-admin.socket" "$pkg/lib/systemd/system/"
chmod 0644 "$pkg/lib/systemd/system/laked.service"
install -m 0644 "$here/laked.yaml" "$pkg/etc/lake/laked.yaml"
install -m 0644 "$here/modules-load.d/lake.conf" "$pkg/etc/modules-load.d/lake.conf"
"$here/stage-kernel-src.sh" "$pkg/usr/src/lake-$version" "$version"

cat >"$pkg/DEBIAN/control" <<CONTROL
Package: lake
Version: $version
Architecture: $arch
Maintainer: lake developers <lake@localhost>
Depends: dkms, kmod
Recommends: linux-headers-$arch
Section: misc
Priority: optional
Installed-Size: $(du -sk "$pkg" | cut -f1)
Description: ML and GPUs for the Linux kernel, served from userspace
 laked (the daemon, socket-activated by systemd), lakectl, and the lake
 kernel modules (/dev/lake and lakelib) as DKMS sources.
CONTROL
printf '/etc/lake/laked.yaml\n/etc/modules-load.d/lake.conf\n' >"$pkg/DEBIAN/conffiles"

cat >"$pkg/DEBIAN/postinst" <<POSTINST
#!/bin/sh
set -e
[ "\$1" = configure ] || exit 0
[ -z "\${DPKG_ROOT:-}" ] || exit 0
dkms add -m lake -v $version >/dev/null 2>&1 || true
kver=\$(uname -r)
if [ -e "/lib/modules/\$kver/build/Makefile" ]; then
	dkms install -m lake -v $version -k "\$kver" ||
		echo "lake: dkms could not build the modules for \$kver (see /var/lib/dkms/lake/$version/build/make.log)" >&2
else
	echo "lake: no headers for \$kver; install linux-headers-\$kver and DKMS builds the modules" >&2
fi
if [ -d /run/systemd/system ]; then
	modprobe lake_shm 2>/dev/null || true
	systemctl daemon-reload || true
	systemctl enable --now laked.socket laked-admin.socket laked.service || true
fi
POSTINST

cat >"$pkg/DEBIAN/prerm" <<PRERM
#!/bin/sh
set -e
[ -z "\${DPKG_ROOT:-}" ] || exit 0
if [ -d /run/systemd/system ]; then
	systemctl disable --now laked.service laked.socket laked-admin.socket || true
fi
dkms remove -m lake -v $version --all >/dev/null 2>&1 || true
PRERM

cat >"$pkg/DEBIAN/postrm" <<POSTRM
#!/bin/sh
set -e
[ -z "\${DPKG_ROOT:-}" ] || exit 0
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
POSTRM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "$out"
