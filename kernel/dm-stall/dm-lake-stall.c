// SPDX-License-Identifier: GPL-2.0
/*
 * dm-lake-stall.c - device-mapper target "lake_stall" for the VM test: a
 * pass-through to one device that stalls in bursts, the way an SSD stalls
 * during garbage collection or a cache flush (see linnos/ssd.go).
 *
 *   dmsetup create NAME --table "0 SECTORS lake_stall DEV PERIOD_MS BUSY_MS SEED [SLOT NSLOTS]"
 *
 * Time is cut into periods of PERIOD_MS (each jittered by +-30%); in each
 * period the device is busy once for BUSY_MS (jittered by +-30%) at a
 * random offset within slot SLOT of NSLOTS equal slots of the period (the
 * whole period by default). Every bio (read, write, flush) that arrives
 * while the device is busy is held and issued when the busy interval ends,
 * so its latency is the rest of the interval plus the device's own. The
 * schedule is a deterministic function of SEED and CLOCK_MONOTONIC, so
 * devices with the same SEED have the same periods: with different slots
 * their stalls never overlap (staggered GC, as arrays that coordinate
 * their SSDs' garbage collection do); with different seeds they are
 * independent. "dmsetup message NAME 0 stall on|off" turns stalling on or off
 * (held bios are issued at once on off); the status line counts stalls
 * and held bios.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/device-mapper.h>
#include <linux/bio.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <linux/hrtimer.h>
#include <linux/ktime.h>

#define DM_MSG_PREFIX "lake_stall"

struct st_c {
	struct dm_dev *dev;
	spinlock_t lock;
	u64 rng;
	u64 period_ns, busy_ns;
	u32 slot, nslots;
	u64 win_start, busy_start, busy_end, next_start; /* CLOCK_MONOTONIC ns */
	struct bio_list held;
	bool enabled, armed;
	struct hrtimer timer;
	struct work_struct release;
	u64 stalls, held_total, passed;
};

static u64 st_next(struct st_c *sc)
{
	sc->rng ^= sc->rng << 13;
	sc->rng ^= sc->rng >> 7;
	sc->rng ^= sc->rng << 17;
	return sc->rng;
}

/* st_jitter returns v scaled by a factor in [0.7, 1.3]. */
static u64 st_jitter(struct st_c *sc, u64 v)
{
	return v * (700 + st_next(sc) % 601) / 1000;
}

/* st_advance moves the schedule to the period holding now (lock held). */
static void st_advance(struct st_c *sc, u64 now)
{
	while (now >= sc->next_start) {
		u64 period = st_jitter(sc, sc->period_ns);
		u64 slot = period / sc->nslots;
		u64 busy = min(st_jitter(sc, sc->busy_ns), slot / 2);

		sc->win_start = sc->next_start;
		sc->next_start = sc->win_start + period;
		sc->busy_start = sc->win_start + sc->slot * slot + st_next(sc) % (slot - busy);
		sc->busy_end = sc->busy_start + busy;
	}
}

static void st_release(struct work_struct *w)
{
	struct st_c *sc = container_of(w, struct st_c, release);
	struct bio_list list;
	struct bio *bio;
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	list = sc->held;
	bio_list_init(&sc->held);
	spin_unlock_irqrestore(&sc->lock, flags);
	while ((bio = bio_list_pop(&list)))
		submit_bio_noacct(bio);
}

static enum hrtimer_restart st_timer(struct hrtimer *t)
{
	struct st_c *sc = container_of(t, struct st_c, timer);
	unsigned long flags;

	spin_lock_irqsave(&sc->lock, flags);
	sc->armed = false;
	spin_unlock_irqrestore(&sc->lock, flags);
	schedule_work(&sc->release);
	return HRTIMER_NORESTART;
}

static int st_map(struct dm_target *ti, struct bio *bio)
{
	struct st_c *sc = ti->private;
	unsigned long flags;
	u64 now;

	bio_set_dev(bio, sc->dev->bdev);
	if (bio_sectors(bio) || !op_is_flush(bio->bi_opf))
		bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	spin_lock_irqsave(&sc->lock, flags);
	now = ktime_get_ns();
	st_advance(sc, now);
	if (sc->enabled && now >= sc->busy_start && now < sc->busy_end) {
		if (!sc->armed) {
			sc->armed = true;
			sc->stalls++;
			hrtimer_start(&sc->timer, ns_to_ktime(sc->busy_end), HRTIMER_MODE_ABS);
		}
		bio_list_add(&sc->held, bio);
		sc->held_total++;
		spin_unlock_irqrestore(&sc->lock, flags);
		return DM_MAPIO_SUBMITTED;
	}
	sc->passed++;
	spin_unlock_irqrestore(&sc->lock, flags);
	return DM_MAPIO_REMAPPED;
}

/* lake_stall DEV PERIOD_MS BUSY_MS SEED [SLOT NSLOTS] */
static int st_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct st_c *sc;
	unsigned int period_ms, busy_ms, slot = 0, nslots = 1;
	u64 seed;
	int err;

	if (argc != 4 && argc != 6) {
		ti->error = "lake_stall: want DEV PERIOD_MS BUSY_MS SEED [SLOT NSLOTS]";
		return -EINVAL;
	}
	if (argc == 6 && (kstrtouint(argv[4], 10, &slot) || kstrtouint(argv[5], 10, &nslots) || nslots < 1 ||
			  nslots > 16 || slot >= nslots)) {
		ti->error = "lake_stall: SLOT 0..NSLOTS-1, NSLOTS 1..16";
		return -EINVAL;
	}
	if (kstrtouint(argv[1], 10, &period_ms) || period_ms < 2 || period_ms > 600000 ||
	    kstrtouint(argv[2], 10, &busy_ms) || busy_ms < 1 || busy_ms > period_ms / (2 * nslots) ||
	    kstrtou64(argv[3], 10, &seed)) {
		ti->error = "lake_stall: PERIOD_MS 2..600000, BUSY_MS 1..PERIOD_MS/(2*NSLOTS), SEED a number";
		return -EINVAL;
	}
	sc = kzalloc(sizeof(*sc), GFP_KERNEL);
	if (!sc) {
		ti->error = "lake_stall: out of memory";
		return -ENOMEM;
	}
	err = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table), &sc->dev);
	if (err) {
		ti->error = "lake_stall: cannot open the device";
		kfree(sc);
		return err;
	}
	spin_lock_init(&sc->lock);
	bio_list_init(&sc->held);
	INIT_WORK(&sc->release, st_release);
	hrtimer_init(&sc->timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS);
	sc->timer.function = st_timer;
	sc->rng = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
	sc->period_ns = (u64)period_ms * NSEC_PER_MSEC;
	sc->busy_ns = (u64)busy_ms * NSEC_PER_MSEC;
	sc->slot = slot;
	sc->nslots = nslots;
	sc->enabled = true;
	st_advance(sc, ktime_get_ns());
	ti->private = sc;
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	return 0;
}

static void st_dtr(struct dm_target *ti)
{
	struct st_c *sc = ti->private;

	hrtimer_cancel(&sc->timer);
	st_release(&sc->release); /* nothing is held after a suspend; to be sure */
	flush_work(&sc->release);
	dm_put_device(ti, sc->dev);
	kfree(sc);
}

static int st_message(struct dm_target *ti, unsigned int argc, char **argv, char *result, unsigned int maxlen)
{
	struct st_c *sc = ti->private;
	unsigned long flags;

	if (argc == 2 && !strcmp(argv[0], "stall") && (!strcmp(argv[1], "on") || !strcmp(argv[1], "off"))) {
		spin_lock_irqsave(&sc->lock, flags);
		sc->enabled = !strcmp(argv[1], "on");
		spin_unlock_irqrestore(&sc->lock, flags);
		if (!sc->enabled)
			schedule_work(&sc->release);
		return 0;
	}
	DMWARN("unknown message (stall on|off)");
	return -EINVAL;
}

static void st_status(struct dm_target *ti, status_type_t type, unsigned int status_flags, char *result,
		      unsigned int maxlen)
{
	struct st_c *sc = ti->private;
	unsigned int sz = 0;
	unsigned long flags;

	switch (type) {
	case STATUSTYPE_INFO:
		spin_lock_irqsave(&sc->lock, flags);
		DMEMIT("enabled=%d stalls=%llu held=%llu passed=%llu", sc->enabled ? 1 : 0,
		       (unsigned long long)sc->stalls, (unsigned long long)sc->held_total,
		       (unsigned long long)sc->passed);
		spin_unlock_irqrestore(&sc->lock, flags);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %llu %llu %u %u", sc->dev->name, (unsigned long long)(sc->period_ns / NSEC_PER_MSEC),
		       (unsigned long long)(sc->busy_ns / NSEC_PER_MSEC), sc->slot, sc->nslots);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int st_iterate_devices(struct dm_target *ti, iterate_devices_callout_fn fn, void *data)
{
	struct st_c *sc = ti->private;

	return fn(ti, sc->dev, ti->begin, ti->len, data);
}

static struct target_type st_target = {
	.name = "lake_stall",
	.version = { 1, 0, 0 },
	.module = THIS_MODULE,
	.ctr = st_ctr,
	.dtr = st_dtr,
	.map = st_map,
	.status = st_status,
	.message = st_message,
	.iterate_devices = st_iterate_devices,
};

static int __init st_init(void)
{
	return dm_register_target(&st_target);
}

static void __exit st_exit(void)
{
	dm_unregister_target(&st_target);
}

module_init(st_init);
module_exit(st_exit);
MODULE_DESCRIPTION("device-mapper test target that stalls I/O in bursts (lake VM test)");
MODULE_LICENSE("GPL");
