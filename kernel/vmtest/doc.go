// Package vmtest holds the end-to-end test of lake's kernel modules: it
// runs run.sh, which builds every module kernel/Kbuild builds (the test
// modules included) against Debian's Linux 6.1 headers, packs them with
// laked into a busybox initramfs, boots Debian's 6.1 kernel in qemu (TCG),
// and runs init.sh's phases: the self-test, the laked-kill check, calls
// against a hostile daemon, the restart check, the LiteFlow phase
// (phase-liteflow.sh: lake_lftest, tcp_lake's four modes and recovery
// after a path change) and the installed layout (phase-pkg.sh).
// TestVMLinnOS boots a second VM for the dm-linnos phase alone
// (LAKE_VM_PHASE=dm, phase-dm.sh). The tests parse the serial console and
// assert on every step; the console checks also run on recorded consoles
// (testdata) without qemu. The VM tests skip with a reason when not root
// or when qemu, the kernel image, the headers, busybox, gcc or make are
// missing.
package vmtest
