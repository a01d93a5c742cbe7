// Package lakec holds lake's C userspace library (lake_client.h,
// lake_client.c) and the C code it shares with the kernel module
// (lake_ring.h: region creation, the bounded single-producer submission,
// the consumer side of the rings, ring reset; lake_feat_create.h: creating
// a feature registry and registering schemas from C) and the tests of
// ../include/lake_linnos.h, the integer LinnOS engine and weight-image
// loader the kernel's dm-linnos target runs (bit-exact with
// linnos.IntModel). Go code does not
// link against it: this package only carries the host tests that compile
// the C code with gcc and run it (with AddressSanitizer and
// UndefinedBehaviorSanitizer), including checks of the C results against
// the Go packages shm and features.
package lakec
