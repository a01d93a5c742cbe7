// Package deploy holds no code: this folder is what installs lake as a
// system service (the systemd units, laked.yaml, modules-load.d, the
// kernel source staging for `make install-modules` and DKMS, the Debian
// package). Its tests check that layout: the staged module tree and its
// dkms.conf name every module the top-level kernel/Kbuild builds, the tree
// builds against the installed kernel headers (dkms build), and `make
// install-modules` leaves a depmod-resolvable /lib/modules/KVER/extra.
// They trust nothing they read back: module lists come from the build,
// not from the scripts under test.
package deploy
