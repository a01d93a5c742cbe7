// SPDX-License-Identifier: GPL-2.0
/*
 * lake_shm.ko - the kernel's lake region and /dev/lake.
 *
 * At load it allocates a region (shm/PROTOCOL.md, "Layout") in vmalloc
 * memory and registers /dev/lake (misc device, mode 0600, one opener at a
 * time). laked opens the device, reads the geometry with LAKE_IOC_INFO,
 * mmaps the region, waits for submissions with poll(POLLIN) and rings
 * LAKE_IOC_CQ_RING after posting completions (or does both in one call,
 * LAKE_IOC_COMMIT_WAIT); the module then reaps the completion ring and
 * calls each submitter's done function.
 *
 * Kernel producers (lakelib.ko) submit with lake_shm_submit under one
 * spinlock: the module is the region's only producer, so it keeps the
 * submission tail privately and never reads it back from the shared
 * header (laked is untrusted: every shared word is read once, indices are
 * masked, tags are checked against a private table).
 *
 * When laked closes the device or dies (the last reference to the file,
 * mappings included, goes away), every pending submitter gets -EPIPE, the
 * rings are reset, and the next open attaches a new laked.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include <linux/poll.h>
#include <linux/wait.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/sched.h>

#include "lake_kapi.h"
#include "lake_dev.h"
#include "lake_ring.h"
#include "lake_feat_create.h"

static unsigned int sq_entries = 256;
module_param(sq_entries, uint, 0444);
MODULE_PARM_DESC(sq_entries, "submission ring entries (power of two, 8..16384)");
static unsigned int cq_entries = 512;
module_param(cq_entries, uint, 0444);
MODULE_PARM_DESC(cq_entries, "completion ring entries (power of two, sq_entries..32768)");
static unsigned int arena_kib = 4096;
module_param(arena_kib, uint, 0444);
MODULE_PARM_DESC(arena_kib, "data arena size in KiB (multiple of 4)");
static unsigned int features_kib = 512;
module_param(features_kib, uint, 0444);
MODULE_PARM_DESC(features_kib, "feature registry area size in KiB (multiple of 4, 0 for none)");
static unsigned int linnos_devices = 64;
module_param(linnos_devices, uint, 0444);
MODULE_PARM_DESC(linnos_devices, "devices the LinnOS feature schemas hold (1..4096)");

/* one pending submission */
struct lake_pending {
	u64 tag; /* 0: free */
	lake_shm_done_fn done;
	void *arg;
};

static struct {
	void *region;
	u64 size;
	struct lake_ring ring; /* validated geometry, private */
	u64 arena_size, features_off, features_size;

	spinlock_t lock; /* submissions, the pending table, attach state */
	bool attached;
	u32 sq_tail; /* private producer position */
	u32 gen;
	struct lake_pending *pend;
	u32 *free_idx;
	u32 nfree, npend;
	u32 attach_count;

	spinlock_t cq_lock; /* serialises reapers of the completion ring */
	atomic_t open;
	atomic_t kick; /* LAKE_IOC_KICK: end the next (or current) COMMIT_WAIT */
	wait_queue_head_t wq;
} ld;

int lake_shm_submit(const struct lake_sqe *in, lake_shm_done_fn done, void *arg)
{
	struct lake_sqe sqe = *in;
	unsigned long fl;
	bool ring_bell;
	u32 idx;

	if (!done)
		return -EINVAL;
	spin_lock_irqsave(&ld.lock, fl);
	if (!ld.attached) {
		spin_unlock_irqrestore(&ld.lock, fl);
		return -ENOTCONN;
	}
	if (!ld.nfree) {
		spin_unlock_irqrestore(&ld.lock, fl);
		return -EBUSY;
	}
	idx = ld.free_idx[ld.nfree - 1];
	if (++ld.gen == 0)
		ld.gen = 1;
	sqe.tag = (u64)ld.gen << 32 | idx;
	if (lake_sq_submit_sp(&ld.ring, &ld.sq_tail, &sqe)) {
		/* cannot happen with at most sq_entries pending unless laked
		 * corrupted the ring */
		spin_unlock_irqrestore(&ld.lock, fl);
		return -EBUSY;
	}
	ld.nfree--;
	ld.pend[idx].tag = sqe.tag;
	ld.pend[idx].done = done;
	ld.pend[idx].arg = arg;
	ring_bell = lake_sq_doorbell_needed(&ld.ring);
	if (ring_bell)
		__atomic_add_fetch(&ld.ring.hdr->sq_wake_seq, 1, __ATOMIC_SEQ_CST);
	spin_unlock_irqrestore(&ld.lock, fl);
	if (ring_bell || wq_has_sleeper(&ld.wq))
		wake_up_interruptible_poll(&ld.wq, EPOLLIN | EPOLLRDNORM);
	return 0;
}
EXPORT_SYMBOL_GPL(lake_shm_submit);

void *lake_shm_arena(u64 *size)
{
	*size = ld.arena_size;
	return ld.ring.arena;
}
EXPORT_SYMBOL_GPL(lake_shm_arena);

void *lake_shm_features(u64 *size)
{
	*size = ld.features_size;
	if (!ld.features_size)
		return NULL;
	return (u8 *)ld.region + ld.features_off;
}
EXPORT_SYMBOL_GPL(lake_shm_features);

bool lake_shm_attached(void)
{
	return READ_ONCE(ld.attached);
}
EXPORT_SYMBOL_GPL(lake_shm_attached);

/* take_pending removes the pending entry for tag; false if unknown. */
static bool take_pending(u64 tag, lake_shm_done_fn *done, void **arg)
{
	u32 idx = (u32)tag;
	unsigned long fl;
	bool ok = false;

	spin_lock_irqsave(&ld.lock, fl);
	if (tag && idx < ld.npend && ld.pend[idx].tag == tag) {
		*done = ld.pend[idx].done;
		*arg = ld.pend[idx].arg;
		ld.pend[idx].tag = 0;
		ld.free_idx[ld.nfree++] = idx;
		ok = true;
	}
	spin_unlock_irqrestore(&ld.lock, fl);
	return ok;
}

/* reap_completions drains the completion ring; returns the number of
 * completions matched to a pending submission. */
static long reap_completions(void)
{
	struct lake_cqe batch[8];
	unsigned int n, i, rounds = 0, budget = 2 * (ld.ring.cq_mask + 1);
	long matched = 0, unknown = 0;

	while (budget) {
		spin_lock(&ld.cq_lock);
		n = lake_cq_reap(&ld.ring, batch, min_t(unsigned int, ARRAY_SIZE(batch), budget));
		spin_unlock(&ld.cq_lock);
		if (!n)
			break;
		budget -= n;
		for (i = 0; i < n; i++) {
			lake_shm_done_fn done;
			void *arg;

			if (take_pending(batch[i].tag, &done, &arg)) {
				done(arg, 0, &batch[i]);
				matched++;
			} else {
				unknown++;
			}
		}
		if (++rounds % 64 == 0)
			cond_resched();
	}
	if (unknown)
		pr_notice_ratelimited("lake_shm: ignored %ld completions with unknown tags\n", unknown);
	return matched;
}

/* fail_all completes every pending submission with err and returns how
 * many it completed. */
static u32 fail_all(int err)
{
	u32 idx, n = 0;

	for (idx = 0; idx < ld.npend; idx++) {
		lake_shm_done_fn done;
		void *arg;
		u64 tag = READ_ONCE(ld.pend[idx].tag);

		if (tag && take_pending(tag, &done, &arg)) {
			done(arg, err, NULL);
			n++;
		}
	}
	return n;
}

/* format_features creates the feature registry in the features area and
 * registers the LinnOS schemas, while nobody else maps the region (at load,
 * and at detach when laked left it unusable). */
static int format_features(void *mem, u64 size)
{
	struct lake_feat_config cfg = { .max_schemas = 16 };
	struct lake_feat_view v;
	u64 table_end = lake_feat__align(LAKE_FEAT_HEADER_SIZE + 16 * LAKE_FEAT_SCHEMA_ENTRY_SIZE, 64);
	int err;

	if (size <= table_end + 64) {
		pr_err("lake_shm: features_kib=%u is too small for a registry\n", features_kib);
		return -EINVAL;
	}
	cfg.arena_bytes = (size - table_end) & ~63ull;
	err = lake_feat_create(mem, size, cfg);
	if (!err)
		err = lake_feat_attach(&v, mem, size);
	if (!err)
		err = lake_feat_register_linnos(&v, linnos_devices, LAKE_FEAT_KERNEL_OWNER);
	if (err)
		pr_err("lake_shm: cannot create the feature registry (%d): linnos_devices=%u features_kib=%u\n",
		       err, linnos_devices, features_kib);
	return err;
}

/* features_ok reports whether the registry is still usable: it attaches
 * and holds the LinnOS schemas. */
static bool features_ok(void *mem, u64 size)
{
	struct lake_feat_view v;
	struct lake_feat_sdesc s;

	return !lake_feat_attach(&v, mem, size) &&
	       !lake_feat_schema_find(&v, LAKE_FEAT_LINNOS_ARRIVAL, &s) &&
	       !lake_feat_schema_find(&v, LAKE_FEAT_LINNOS_COMPLETION, &s);
}

/* restore_region undoes whatever a departed laked wrote into the region's
 * shared state: it rewrites the header from the module's private copy of
 * the geometry (keeping daemon_epoch) and resets both rings. Only while
 * nobody maps the region and no kernel producer can submit. */
static void restore_region(void)
{
	struct lake_region_header *h = ld.region;
	u32 epoch = READ_ONCE(h->daemon_epoch);
	u64 feat = ld.features_size;

	memset(h, 0, LAKE_HEADER_SIZE);
	/* cannot fail: the same sizes succeeded at load */
	WARN_ON_ONCE(lake_region_format(ld.region, ld.size, ld.ring.sq_mask + 1, ld.ring.cq_mask + 1,
					ld.arena_size, feat,
					LAKE_FLAG_KERNEL_CLIENT | (feat ? LAKE_FLAG_FEATURES : 0)));
	h->daemon_epoch = epoch;
	lake_ring_reset(&ld.ring);
	ld.sq_tail = 0;
}

/* restore_features re-creates the feature registry if a departed laked
 * left it unusable. Kernel producers hold geometry validated earlier, so
 * a record racing with this stays inside the area (its sample is lost);
 * the re-created registry has the same layout as before. */
static void restore_features(void)
{
	void *mem = (u8 *)ld.region + ld.features_off;

	if (!ld.features_size || features_ok(mem, ld.features_size))
		return;
	pr_notice("lake_shm: the feature registry was corrupted; re-creating it\n");
	format_features(mem, ld.features_size);
}

static int lake_open(struct inode *inode, struct file *file)
{
	unsigned long fl;
	u32 n;

	if (atomic_cmpxchg(&ld.open, 0, 1) != 0)
		return -EBUSY;
	spin_lock_irqsave(&ld.lock, fl);
	ld.attached = true;
	n = ++ld.attach_count;
	spin_unlock_irqrestore(&ld.lock, fl);
	pr_info("lake_shm: laked attached (pid %d, attach %u)\n", task_pid_nr(current), n);
	return 0;
}

static int lake_release(struct inode *inode, struct file *file)
{
	unsigned long fl;
	u32 failed;

	spin_lock_irqsave(&ld.lock, fl);
	ld.attached = false; /* no new submissions from here on */
	spin_unlock_irqrestore(&ld.lock, fl);

	/* Completions laked posted but did not ring for still count. */
	reap_completions();
	failed = fail_all(-EPIPE);

	/* Nobody maps the region any more and no kernel producer can submit:
	 * put it back to the initial state for the next laked. */
	spin_lock_irqsave(&ld.lock, fl);
	spin_lock(&ld.cq_lock);
	restore_region();
	spin_unlock(&ld.cq_lock);
	spin_unlock_irqrestore(&ld.lock, fl);
	restore_features();

	pr_info("lake_shm: laked detached, %u pending calls failed\n", failed);
	atomic_set(&ld.open, 0);
	return 0;
}

static __poll_t lake_poll(struct file *file, poll_table *pt)
{
	poll_wait(file, &ld.wq, pt);
	if (lake_sq_ready(&ld.ring))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}

static long lake_ioctl(struct file *file, unsigned int cmd, unsigned long uarg)
{
	switch (cmd) {
	case LAKE_IOC_INFO: {
		struct lake_dev_info info;

		memset(&info, 0, sizeof(info));
		info.region_size = ld.size;
		info.version = LAKE_VERSION_MAJOR << 16 | LAKE_VERSION_MINOR;
		info.flags = LAKE_FLAG_KERNEL_CLIENT | (ld.features_size ? LAKE_FLAG_FEATURES : 0);
		info.sq_entries = ld.ring.sq_mask + 1;
		info.cq_entries = ld.ring.cq_mask + 1;
		info.arena_size = ld.arena_size;
		info.features_size = ld.features_size;
		info.attach_count = READ_ONCE(ld.attach_count);
		if (copy_to_user((void __user *)uarg, &info, sizeof(info)))
			return -EFAULT;
		return 0;
	}
	case LAKE_IOC_CQ_RING:
		return reap_completions();
	case LAKE_IOC_COMMIT_WAIT: {
		struct lake_dev_wait w;
		long ret, left;

		if (copy_from_user(&w, (void __user *)uarg, sizeof(w)))
			return -EFAULT;
		if (w.flags & ~LAKE_WAIT_COMMIT || w.timeout_ms > 60000)
			return -EINVAL;
		w.reaped = 0;
		if (w.flags & LAKE_WAIT_COMMIT)
			w.reaped = reap_completions();
		ret = lake_sq_ready(&ld.ring) ? 1 : 0;
		if (!ret && w.timeout_ms) {
			left = wait_event_interruptible_timeout(ld.wq,
				lake_sq_ready(&ld.ring) || atomic_xchg(&ld.kick, 0),
				msecs_to_jiffies(w.timeout_ms));
			ret = left < 0 ? left : (lake_sq_ready(&ld.ring) ? 1 : 0);
		}
		if (copy_to_user((void __user *)uarg, &w, sizeof(w)))
			return -EFAULT;
		return ret == -ERESTARTSYS ? -EINTR : ret;
	}
	case LAKE_IOC_KICK:
		atomic_set(&ld.kick, 1);
		wake_up_interruptible(&ld.wq);
		return 0;
	default:
		return -ENOTTY;
	}
}

static int lake_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long len = vma->vm_end - vma->vm_start;

	/* shared only: a private copy-on-write mapping would hide laked's
	 * writes from the kernel */
	if (vma->vm_pgoff != 0 || len > ld.size || !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	return remap_vmalloc_range(vma, ld.region, 0);
}

static const struct file_operations lake_fops = {
	.owner = THIS_MODULE,
	.open = lake_open,
	.release = lake_release,
	.poll = lake_poll,
	.unlocked_ioctl = lake_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = lake_mmap,
	.llseek = noop_llseek,
};

static struct miscdevice lake_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = LAKE_DEV_NAME,
	.fops = &lake_fops,
	.mode = 0600,
};

static int __init lake_shm_init(void)
{
	u64 arena = (u64)arena_kib * 1024, feat = (u64)features_kib * 1024;
	u64 size = lake_region_size(sq_entries, cq_entries, arena, feat);
	struct lake_region_header *h;
	u32 i;
	int err;

	if (!size) {
		pr_err("lake_shm: invalid sizes sq_entries=%u cq_entries=%u arena_kib=%u features_kib=%u\n",
		       sq_entries, cq_entries, arena_kib, features_kib);
		return -EINVAL;
	}
	spin_lock_init(&ld.lock);
	spin_lock_init(&ld.cq_lock);
	init_waitqueue_head(&ld.wq);
	atomic_set(&ld.open, 0);
	ld.size = size;
	ld.region = vmalloc_user(size);
	if (!ld.region)
		return -ENOMEM;
	if (lake_region_format(ld.region, size, sq_entries, cq_entries, arena, feat,
			       LAKE_FLAG_KERNEL_CLIENT | (feat ? LAKE_FLAG_FEATURES : 0)) ||
	    lake_ring_init(&ld.ring, ld.region, size)) {
		err = -EINVAL;
		goto out_free;
	}
	h = ld.region;
	ld.arena_size = arena;
	ld.features_off = h->features_off;
	ld.features_size = feat;
	if (feat) {
		err = format_features((u8 *)ld.region + ld.features_off, feat);
		if (err)
			goto out_free;
	}
	ld.npend = sq_entries;
	ld.pend = kcalloc(ld.npend, sizeof(*ld.pend), GFP_KERNEL);
	ld.free_idx = kcalloc(ld.npend, sizeof(*ld.free_idx), GFP_KERNEL);
	if (!ld.pend || !ld.free_idx) {
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < ld.npend; i++)
		ld.free_idx[i] = ld.npend - 1 - i;
	ld.nfree = ld.npend;
	err = misc_register(&lake_misc);
	if (err)
		goto out_free;
	pr_info("lake_shm: /dev/%s ready: region %llu bytes, sq %u, cq %u, arena %llu, features %llu\n",
		LAKE_DEV_NAME, size, sq_entries, cq_entries, arena, feat);
	return 0;
out_free:
	kfree(ld.pend);
	kfree(ld.free_idx);
	vfree(ld.region);
	return err;
}

static void __exit lake_shm_exit(void)
{
	/* No laked can hold the device (the module is pinned while it is
	 * open) and no lakelib user is left (lakelib depends on us). */
	misc_deregister(&lake_misc);
	fail_all(-EPIPE);
	kfree(ld.pend);
	kfree(ld.free_idx);
	vfree(ld.region);
}

module_init(lake_shm_init);
module_exit(lake_shm_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lake: shared-memory region and /dev/lake for laked");
MODULE_AUTHOR("The lake authors");
