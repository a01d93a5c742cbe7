// Package vmtest holds the end-to-end test of lake's kernel modules: it
// runs run.sh, which builds lake_shm.ko, lakelib.ko and lake_selftest.ko
// against Debian's Linux 6.1 headers, packs them with laked into a
// busybox initramfs, boots Debian's 6.1 kernel in qemu (TCG), and runs
// the self-test, the laked-kill check and the restart check (init.sh).
// The test parses the serial console and asserts on every step. It skips
// with a reason when it is not root or qemu, the kernel image, the
// headers, busybox, gcc or make are missing.
package vmtest
