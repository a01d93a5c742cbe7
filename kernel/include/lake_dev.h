/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_dev.h - the /dev/lake character device (shm/PROTOCOL.md, "Kernel
 * device"): ioctl numbers and structures shared by the kernel module
 * lake_shm.ko, laked (Go constants in laked/devlake_linux.go, checked
 * against this header by a host test) and C tools.
 */
#ifndef LAKE_DEV_H
#define LAKE_DEV_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define LAKE_DEV_NAME "lake"
#define LAKE_DEV_PATH "/dev/lake"

/* ioctl type byte ('L' is shared with a few drivers; the numbers below are
 * not used by any of them in Linux 6.1). */
#define LAKE_IOC_MAGIC 'L'

/* struct lake_dev_info is what LAKE_IOC_INFO returns. */
struct lake_dev_info {
	__u64 region_size;  /* bytes to mmap at offset 0 */
	__u32 version;      /* protocol version: major << 16 | minor */
	__u32 flags;        /* the region header's flags */
	__u32 sq_entries;
	__u32 cq_entries;
	__u64 arena_size;
	__u64 features_size;
	__u32 attach_count; /* how many times a laked has opened the device */
	__u32 reserved[5];  /* zero */
};

/* LAKE_IOC_INFO: read the region geometry (struct lake_dev_info). */
#define LAKE_IOC_INFO _IOR(LAKE_IOC_MAGIC, 0x40, struct lake_dev_info)
/* LAKE_IOC_CQ_RING: laked posted completions; the module reaps the
 * completion ring and wakes or calls back the kernel callers. Returns the
 * number of completions reaped (>= 0) or a negative errno. */
#define LAKE_IOC_CQ_RING _IO(LAKE_IOC_MAGIC, 0x41)

/* struct lake_dev_wait is LAKE_IOC_COMMIT_WAIT's argument. */
struct lake_dev_wait {
	__u32 flags;      /* LAKE_WAIT_COMMIT, or 0 */
	__u32 timeout_ms; /* longest sleep for a submission (at most 60000) */
	__s64 reaped;     /* out: completions reaped by the commit */
};

/* LAKE_WAIT_COMMIT: laked posted completions; reap them first. */
#define LAKE_WAIT_COMMIT 0x1u

/* LAKE_IOC_COMMIT_WAIT: commit and fetch in one call (ublk's
 * COMMIT_AND_FETCH): with LAKE_WAIT_COMMIT, reap the completion ring as
 * LAKE_IOC_CQ_RING does; then sleep until a submission is published at
 * sq_head, LAKE_IOC_KICK is called, or timeout_ms passes. Returns 1 when
 * a submission is ready, 0 when not (timeout or kick), or a negative errno
 * (-EINTR: a signal; -EINVAL: unknown flags or timeout over 60000). */
#define LAKE_IOC_COMMIT_WAIT _IOWR(LAKE_IOC_MAGIC, 0x42, struct lake_dev_wait)
/* LAKE_IOC_KICK: end a LAKE_IOC_COMMIT_WAIT in progress (or the next one),
 * e.g. when laked drains. */
#define LAKE_IOC_KICK _IO(LAKE_IOC_MAGIC, 0x43)

#endif /* LAKE_DEV_H */
