// SPDX-License-Identifier: GPL-2.0
/*
 * Trackers and tracked disks: attach, detach, device removal, the I/O path
 * and the CBT switch.
 *
 * A tracked disk exists for each disk that has at least one tracker (on the
 * whole disk or on a partition) and lists them. The I/O path finds the
 * tracked disk of a write from its gendisk, admits the write at the write
 * gate of every tracker whose sectors it touches (a partition's write: the
 * partition's and the whole disk's; a whole-disk write: the disk's and
 * those of the partitions under it), marks their CBT maps, hands it to
 * copy-on-write when one of them is in a taken snapshot, and submits it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-tracker: " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/hashtable.h>
#include <linux/sched/mm.h>
#include <linux/blk-mq.h>
#include <linux/bio.h>
#include <linux/delay.h>
#include <linux/jump_label.h>
#include "tracker.h"
#include "cbt_map.h"
#include "filter.h"
#include "params.h"
#include "snapshot.h"
#include "write_gate.h"

/**
 * struct tracked_disk - The trackers of one disk: its own and its
 *	partitions'. Also the domain of their write gates: a write admitted at
 *	one of them passes them all when the block layer resubmits a part.
 * @hash_node: Entry in tdisk_table (keyed by @disk), looked up under RCU;
 *	changed only with tracker_mutex held.
 * @disk: The disk, as an identity only (see struct tracker).
 * @trackers: The trackers (disk_link); RCU list, changed only with
 *	tracker_mutex held.
 * @kref: References: one per tracker (the tracker's @tdisk). Freed after
 *	its last tracker, which left the tables a grace period before.
 */
struct tracked_disk {
	struct hlist_node hash_node;
	const struct gendisk *disk;
	struct list_head trackers;
	struct kref kref;
};

/*
 * tracker_mutex serialises attach, detach, device removal and unload, and
 * guards changes to tracker_table, tdisk_table, the tracked disks' lists
 * and tracker_count. The I/O path reads them under RCU only. Trackers and
 * tracked disks leave the tables before their last reference is dropped,
 * and are freed after a grace period.
 */
static DEFINE_MUTEX(tracker_mutex);
#define TRACKER_HASH_BITS 6
static DEFINE_HASHTABLE(tracker_table, TRACKER_HASH_BITS);
static DEFINE_HASHTABLE(tdisk_table, TRACKER_HASH_BITS);
/* Attached trackers; read locklessly as a fast "nothing tracked" test. */
static atomic_t tracker_count = ATOMIC_INIT(0);
/* Frees trackers and tracked disks in process context. */
static struct workqueue_struct *tracker_wq;
/*
 * Trackers come from their own cache, so that slub_debug can poison exactly
 * them (the test VM boots with slub_debug=FZP,blksnap_tracker): a reader
 * that touches a freed tracker then faults or is reported at once.
 */
static struct kmem_cache *tracker_cache;
/* Splits a write that several snapshots must copy (see tracker_cow()). */
static struct bio_set tracker_bio_set;

/*
 * Testing only (test_lookup_delay_us with enable_test_ioctls): widens the
 * window between finding a tracker and using it, where an unlinked tracker
 * freed without a grace period would be touched.
 */
static DEFINE_STATIC_KEY_FALSE(lookup_delay_key);

/* ---------------------------------------------------------------------- */
/* Lookups and lifetime                                                   */
/* ---------------------------------------------------------------------- */

static struct tracker *tracker_lookup_rcu(dev_t dev_id)
{
	struct tracker *tracker;

	hash_for_each_possible_rcu(tracker_table, tracker, hash_node, dev_id) {
		if (static_branch_unlikely(&lookup_delay_key))
			udelay(test_lookup_delay_us);
		if (tracker->dev_id == dev_id)
			return tracker;
	}
	return NULL;
}

static struct tracked_disk *tdisk_lookup_rcu(const struct gendisk *disk)
{
	struct tracked_disk *tdisk;

	hash_for_each_possible_rcu(tdisk_table, tdisk, hash_node,
				   (unsigned long)disk) {
		if (tdisk->disk == disk)
			return tdisk;
	}
	return NULL;
}

static void tdisk_release(struct kref *kref)
{
	kfree(container_of(kref, struct tracked_disk, kref));
}

static void tracker_release_work(struct work_struct *work)
{
	struct tracker *tracker = container_of(to_rcu_work(work),
					       struct tracker, release_work);

	/* Waits for the writes it admitted: their completion uses it. */
	write_gate_exit(&tracker->gate);
	pr_debug("[%u:%u] tracker freed\n", MAJOR(tracker->dev_id),
		 MINOR(tracker->dev_id));
	cbt_map_put(rcu_dereference_protected(tracker->cbt_map, 1));
	kref_put(&tracker->tdisk->kref, tdisk_release);
	kmem_cache_free(tracker_cache, tracker);
}

/*
 * kref release: any context. The tracker left the tables before its last
 * reference went, but a lookup under rcu_read_lock() on another CPU may
 * still hold its address: it is freed by tracker_wq only after a grace
 * period (queue_rcu_work()).
 */
void tracker_release(struct kref *kref)
{
	struct tracker *tracker = container_of(kref, struct tracker, kref);

	queue_rcu_work(tracker_wq, &tracker->release_work);
}

struct tracker *tracker_get_by_dev(dev_t dev_id)
{
	struct tracker *tracker;

	rcu_read_lock();
	tracker = tracker_lookup_rcu(dev_id);
	if (tracker && !kref_get_unless_zero(&tracker->kref))
		tracker = NULL;
	rcu_read_unlock();
	return tracker;
}

struct cbt_map *tracker_cbt_map_get(struct tracker *tracker)
{
	struct cbt_map *cbt_map;

	rcu_read_lock();
	cbt_map = rcu_dereference(tracker->cbt_map);
	cbt_map_get(cbt_map);
	rcu_read_unlock();
	return cbt_map;
}

/* The sectors of @tracker on its disk, as [*start, *end). Under RCU. */
static void tracker_extent(struct tracker *tracker, sector_t *start,
			   sector_t *end)
{
	struct cbt_map *cbt_map = rcu_dereference(tracker->cbt_map);

	*start = tracker->start_sect;
	*end = tracker->start_sect + cbt_map->device_capacity;
}

int tracker_for_each_overlapping(struct tracker *tracker,
				 int (*fn)(struct tracker *other, void *arg),
				 void *arg)
{
	struct tracker *other;
	sector_t start, end, ostart, oend;
	int ret = 0;

	rcu_read_lock();
	tracker_extent(tracker, &start, &end);
	list_for_each_entry_rcu(other, &tracker->tdisk->trackers, disk_link) {
		if (other == tracker)
			continue;
		tracker_extent(other, &ostart, &oend);
		if (ostart < end && start < oend) {
			ret = fn(other, arg);
			if (ret)
				break;
		}
	}
	rcu_read_unlock();
	return ret;
}

/* ---------------------------------------------------------------------- */
/* The I/O path                                                           */
/* ---------------------------------------------------------------------- */

/*
 * The bio's sectors on its disk, as [*start, *end). A partition's bio is
 * partition-relative until submit_bio_noacct() remapped it (after our
 * hook; see compat_bio_remapped()); a remapped bio reaches us again only
 * when the block layer resubmits a remainder of a bio that was not ours.
 * Returns false for a bio past its device's end, or whose partition is
 * gone (the block layer fails it).
 */
static bool bio_disk_extent(struct bio *bio, sector_t *start, sector_t *end)
{
	sector_t first, nr;

	if (!compat_bio_dev_extent(bio, &first, &nr))
		return false;
	*start = bio->bi_iter.bi_sector;
	if (!compat_bio_remapped(bio))
		*start += first;
	*end = *start + bio_sectors(bio);
	return *end <= first + nr;
}

static bool bio_changes_data(struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
	case REQ_OP_WRITE_ZEROES:
		return bio_sectors(bio) != 0;
	default:
		return false;
	}
}

/*
 * filter_ops.wants: a write to a disk with trackers, unless it was
 * admitted there already. The block layer resubmits the remainder of a bio
 * it splits (blk_mq_submit_bio(), a bio-based driver's own splitting)
 * through submit_bio_noacct(), with the bio's queue reference held and,
 * for a partition, its sectors remapped: that remainder was marked and
 * copied with the whole bio and must pass untouched (waiting for a closed
 * gate there would deadlock against the switch that waits for the bio). A
 * bio a driver remaps, whole, to another disk (md raid0/linear) is a new
 * write there and is admitted there too. Any context; no sleeping.
 */
static bool tracker_wants(struct bio *bio)
{
	struct tracked_disk *tdisk;
	bool wants;

	/* Pairs with nothing: a stale value only delays or adds a lookup. */
	if (!atomic_read(&tracker_count) || !bio_changes_data(bio))
		return false;
	rcu_read_lock();
	tdisk = tdisk_lookup_rcu(compat_bio_disk(bio));
	wants = tdisk && !write_gate_top(bio, tdisk);
	rcu_read_unlock();
	return wants;
}

/*
 * Whether the submitter may sleep. submit_bio_noacct() may sleep, so it
 * should always; this is for buggy callers, which then get no waiting:
 * their write is deferred to a worker where something would block.
 */
static bool submitter_may_sleep(void)
{
	if (IS_ENABLED(CONFIG_PREEMPT_COUNT))
		return preemptible();
	/* Without a preempt count, held spinlocks cannot be seen. */
	return in_task() && !irqs_disabled();
}

/*
 * The sectors of @tracker that the write [@start, @end) (disk sectors)
 * touches, as [*from, *to) on the disk; false if none. The bio's own
 * device and the whole disk take the whole range, which marks their map
 * corrupted if it lies past the map (the device grew); the other devices
 * (partitions under a whole-disk write) the part inside them.
 */
static bool tracker_touched(struct tracker *tracker, dev_t dev_id,
			    sector_t start, sector_t end, sector_t *from,
			    sector_t *to)
{
	struct cbt_map *cbt_map = rcu_dereference_check(tracker->cbt_map, 1);
	sector_t tstart = tracker->start_sect;

	*from = max(start, tstart);
	if (tracker->dev_id == dev_id || !tstart)
		*to = end;
	else
		*to = min(end, tstart + cbt_map->device_capacity);
	return *from < *to;
}

/* Results of tracker_admit(). */
enum tracker_admission {
	ADMITTED,	/* counted and hooked at every touched tracker's gate */
	DEFERRED,	/* a gate was closed: it keeps the bio */
	NO_MEMORY,	/* no record without waiting: nothing done */
};

/*
 * Admit the write [@start, @end) at the gate of every tracker of @tdisk it
 * touches; its records are the list of those trackers afterwards (see
 * for_each_admitting()). All or nothing. Any context: it never sleeps (the
 * trackers' list is walked under RCU), so a record comes from the
 * allocator without reclaim or from the gate's reserve; when both are out
 * (NO_MEMORY) the caller waits for records to come back, if it may.
 */
static enum tracker_admission tracker_admit(struct tracked_disk *tdisk,
					    struct bio *bio, sector_t start,
					    sector_t end)
{
	dev_t dev_id = compat_bio_dev(bio);
	enum tracker_admission ret;
	struct tracker *tracker;
	sector_t from, to;

again:
	ret = ADMITTED;
	rcu_read_lock();
	list_for_each_entry_rcu(tracker, &tdisk->trackers, disk_link) {
		if (!tracker_touched(tracker, dev_id, start, end, &from, &to))
			continue;
		switch (write_gate_enter(&tracker->gate)) {
		case GATE_ENTERED:
			if (!write_gate_track(&tracker->gate, bio,
					      GFP_NOWAIT | __GFP_NOWARN))
				continue;
			write_gate_leave(&tracker->gate);
			ret = NO_MEMORY;
			break;
		case GATE_CLOSED:
			ret = DEFERRED;
			break;
		case GATE_DYING:
			/* Freed after a grace period: not in the list now. */
			continue;
		}
		break;
	}
	if (ret != ADMITTED) {
		while (write_gate_top(bio, tdisk))
			write_gate_untrack(bio);
		if (ret == DEFERRED && !write_gate_defer_closed(&tracker->gate,
								 bio)) {
			/* It opened meanwhile. */
			rcu_read_unlock();
			goto again;
		}
	}
	rcu_read_unlock();
	return ret;
}

/* The trackers a write was admitted by (pinned by its counts there). */
#define for_each_admitting(tracker, gate, bio, tdisk)			\
	for (gate = write_gate_top(bio, tdisk);				\
	     (tracker = gate ? container_of(gate, struct tracker, gate) : NULL); \
	     gate = write_gate_below(bio, gate))

/*
 * Where an admitted write must be copied first: @tracker copies sectors
 * [@sector, @sector + @count) of its device. @split_at is a disk sector
 * inside the write when more than one snapshot must copy (0 when one
 * does): where the first of them, by sectors, ends.
 */
struct cow_target {
	struct tracker *tracker;
	sector_t sector;
	sector_t count;
	sector_t split_at;
};

/*
 * Marks the map of every tracker that admitted the write [@start, @end),
 * and finds those that must copy it first.
 */
static void tracker_mark(struct tracked_disk *tdisk, struct bio *bio,
			 sector_t start, sector_t end, struct cow_target *target)
{
	dev_t dev_id = compat_bio_dev(bio);
	sector_t from, to, tend, first_end = 0;
	unsigned int copiers = 0;
	struct tracker *tracker;
	struct write_gate *gate;

	for_each_admitting(tracker, gate, bio, tdisk) {
		/* Stable: replaced only with this tracker's gate closed. */
		struct cbt_map *cbt_map = rcu_dereference_check(tracker->cbt_map,
								1);

		tracker_touched(tracker, dev_id, start, end, &from, &to);
		cbt_map_set(cbt_map, from - tracker->start_sect, to - from);
		/* Set and cleared with the gate closed: stable too. */
		if (!READ_ONCE(tracker->cow_on))
			continue;
		tend = min(to, tracker->start_sect + cbt_map->device_capacity);
		if (!copiers++ || tend < first_end)
			first_end = tend;
		if (!target->tracker) {
			target->tracker = tracker;
			target->sector = from - tracker->start_sect;
			target->count = tend - from;
		}
	}
	/*
	 * Devices in snapshots never overlap (snapshot_add_device()), so the
	 * first copier's part ends inside the write.
	 */
	if (copiers > 1 && !WARN_ON_ONCE(first_end <= start || first_end >= end))
		target->split_at = first_end;
}

static void tracker_submit_bio(struct bio *bio);

/*
 * Splits off the first part of @bio, up to @at (a disk sector inside it),
 * and submits both parts through tracker_submit_bio() again: used when two
 * snapshots (of two partitions under one whole-disk write) must copy. The
 * parts complete into @bio (bio_chain()). Return: false (nothing done) if
 * the split failed without blocking.
 */
static bool tracker_split(struct bio *bio, sector_t start, sector_t at,
			  gfp_t gfp)
{
	sector_t sectors = min_t(sector_t, at - start, INT_MAX & ~7);
	struct bio *part;

	part = bio_split(bio, sectors, gfp, &tracker_bio_set);
	if (!part)
		return false;
	bio_chain(part, bio);
	tracker_submit_bio(part);
	tracker_submit_bio(bio);
	return true;
}

/*
 * Writes that could not be handled where they were submitted without
 * waiting (a stacked submitter, a caller that may not sleep): resubmitted
 * by rescue_work, which may wait. They are not admitted anywhere.
 */
static DEFINE_SPINLOCK(rescue_lock);
static struct bio_list rescue_list = BIO_EMPTY_LIST;

static void tracker_rescue_work(struct work_struct *work)
{
	unsigned long flags;
	struct bio *bio;

	for (;;) {
		spin_lock_irqsave(&rescue_lock, flags);
		bio = bio_list_pop(&rescue_list);
		spin_unlock_irqrestore(&rescue_lock, flags);
		if (!bio)
			break;
		tracker_submit_bio(bio);
		cond_resched();
	}
}

static DECLARE_WORK(rescue_work, tracker_rescue_work);

/*
 * Does what the caller cannot do without waiting: a REQ_NOWAIT write ends
 * with BLK_STS_AGAIN (its submitter retries where it may wait); any other
 * goes to rescue_work. The bio is not tracked.
 */
static void tracker_cannot_wait(struct bio *bio, bool nowait)
{
	unsigned long flags;

	if (nowait) {
		bio_wouldblock_error(bio);
		return;
	}
	spin_lock_irqsave(&rescue_lock, flags);
	bio_list_add(&rescue_list, bio);
	spin_unlock_irqrestore(&rescue_lock, flags);
	queue_work(tracker_wq, &rescue_work);
}

/*
 * filter_ops.submit_bio, and where deferred writes start again: admit the
 * write at the gates of the trackers it touches, mark their maps,
 * copy-on-write, submit.
 *
 * The take's instant (see tracker_switch()) rests on the gates: from its
 * admission to its completion a write is counted at the gate of every
 * tracker it touches, and a switch waits for the count to reach zero with
 * the gate closed; so every write a map records with the number the switch
 * ends (and that copy-on-write did not see) is on the device before the
 * switch, and every write admitted after it is recorded with the next
 * number and copied first.
 */
static void tracker_submit_bio(struct bio *bio)
{
	bool nowait = bio->bi_opf & REQ_NOWAIT;
	bool may_block = !nowait && submitter_may_sleep();
	struct cow_target target = {};
	struct tracked_disk *tdisk;
	sector_t start, end;
	gfp_t gfp;

	/*
	 * The tracked disk lives while a tracker of it does; a tracker, while
	 * a write it admitted is in flight. Until then, RCU.
	 */
	rcu_read_lock();
	tdisk = tdisk_lookup_rcu(compat_bio_disk(bio));
	if (tdisk && !kref_get_unless_zero(&tdisk->kref))
		tdisk = NULL;
	rcu_read_unlock();
	if (!tdisk || !bio_disk_extent(bio, &start, &end)) {
		/* Detached meanwhile, or past the end (the block layer fails it). */
		if (tdisk)
			kref_put(&tdisk->kref, tdisk_release);
		filter_submit_bio_noacct(bio);
		return;
	}

	/*
	 * A stacked submitter may hold admitted bios on current->bio_list:
	 * waiting for a record freed by their completion would never end.
	 */
	gfp = may_block && !current->bio_list ? GFP_NOIO : GFP_NOWAIT;
	for (;;) {
		switch (tracker_admit(tdisk, bio, start, end)) {
		case ADMITTED:
			break;
		case DEFERRED:
			goto out;
		case NO_MEMORY:
			if (gfp == GFP_NOIO) {
				/* The reserves are in flight: wait for some. */
				__set_current_state(TASK_UNINTERRUPTIBLE);
				io_schedule_timeout(HZ / 50);
				continue;
			}
			goto cannot_wait;
		}
		break;
	}
	if (!write_gate_top(bio, tdisk)) {
		/* It touches no tracker (a partition without one). */
		filter_submit_bio_noacct(bio);
		goto out;
	}

	tracker_mark(tdisk, bio, start, end, &target);
	if (!target.tracker) {
		filter_submit_bio_noacct(bio);
		goto out;
	}
	if (target.split_at) {
		/* Rare: split where the first snapshot's part ends. */
		while (write_gate_top(bio, tdisk))
			write_gate_untrack(bio);
		if (!tracker_split(bio, start, target.split_at, gfp))
			goto cannot_wait;
		goto out;
	}

	switch (snapshot_cow_bio(target.tracker->snapdev, bio, target.sector,
				 target.count, may_block)) {
	case DIFF_AREA_PASS:
		filter_submit_bio_noacct(bio);
		break;
	case DIFF_AREA_HELD:
		/* A worker submits it after the copy. */
		break;
	case DIFF_AREA_AGAIN:
		if (nowait) {
			bio_wouldblock_error(bio);
			break;
		}
		while (write_gate_top(bio, tdisk))
			write_gate_untrack(bio);
		tracker_cannot_wait(bio, false);
		break;
	}
	goto out;

cannot_wait:
	tracker_cannot_wait(bio, nowait);
out:
	kref_put(&tdisk->kref, tdisk_release);
}

/* ---------------------------------------------------------------------- */
/* CBT switch                                                             */
/* ---------------------------------------------------------------------- */

/*
 * The CBT switch of a snapshot take, optionally turning copy-on-write on,
 * at one instant for every write of the device:
 *
 *  - The tracker's write gate is closed: writes to its sectors submitted
 *    from now on wait in the gate (deferred, their submitters do not
 *    block), and the switch waits until every write admitted before has
 *    completed. That includes
 *    writes past our hook that the queue does not hold: queued on a stacked
 *    submitter's current->bio_list, held by blk-throttle, in flight below a
 *    bio-based device (dm, md), waiting in a copy-on-write queue.
 *  - So every write recorded with the number this switch ends is on the
 *    device now, and is in the image (which reads the device for chunks not
 *    copied); the map is switched and copy-on-write turned on.
 *  - The gate opens: every write admitted from now on, the deferred ones
 *    first, is recorded with the next number and copied before it lands.
 *
 * @killable: a fatal signal ends the wait (-EINTR, nothing changed).
 * May sleep.
 */
static int tracker_switch(struct tracker *tracker, struct block_device *bdev,
			  bool cow_on, bool killable)
{
	struct write_gate *gate = &tracker->gate;
	struct cbt_map *cbt_map, *old_map = NULL;
	unsigned int noio_flags;
	sector_t capacity;
	int ret;

	might_sleep();
	if (READ_ONCE(tracker->is_dead))
		return -ENODEV;

	ret = write_gate_close(gate, killable);
	if (ret)
		return ret;
	/* Writes to the disk wait for us: allocate without I/O. */
	noio_flags = memalloc_noio_save();

	cbt_map = rcu_dereference_protected(tracker->cbt_map, 1);
	capacity = bdev_nr_sectors(bdev);
	if (!capacity) {
		/* The disk is being deleted: no map of size 0. */
		ret = -ENODEV;
		goto out;
	}
	if (capacity != cbt_map->device_capacity ||
	    cbt_map_is_corrupted(cbt_map)) {
		struct cbt_map *new_map;

		pr_warn("[%u:%u] %s: CBT reset, new generation\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id),
			capacity != cbt_map->device_capacity ?
			"device resized" : "map corrupted");
		new_map = cbt_map_create(capacity, GFP_NOIO);
		if (IS_ERR(new_map)) {
			ret = PTR_ERR(new_map);
			goto out;
		}
		old_map = cbt_map;
		cbt_map = new_map;
		rcu_assign_pointer(tracker->cbt_map, new_map);
	}
	cbt_map_switch(cbt_map);
	if (cow_on)
		WRITE_ONCE(tracker->cow_on, true);
out:
	memalloc_noio_restore(noio_flags);
	write_gate_open(gate);

	if (old_map) {
		synchronize_rcu();
		cbt_map_put(old_map);
	}
	return ret;
}

int tracker_take_snapshot(struct tracker *tracker, struct block_device *bdev)
{
	return tracker_switch(tracker, bdev, true, true);
}

void tracker_release_snapshot(struct tracker *tracker)
{
	struct write_gate *gate = &tracker->gate;

	write_gate_close(gate, false);
	WRITE_ONCE(tracker->cow_on, false);
	write_gate_open(gate);
}

int tracker_test_switch(struct tracker *tracker)
{
	struct compat_bdev ob;
	int ret;

	if (compat_bdev_open(&ob, tracker->dev_id))
		return -ENODEV;
	ret = tracker_switch(tracker, ob.bdev, false, true);
	compat_bdev_close(&ob);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Attach, detach, removal                                                */
/* ---------------------------------------------------------------------- */

static struct tracker *tracker_alloc(struct block_device *bdev)
{
	struct tracker *tracker;
	struct cbt_map *cbt_map;
	int ret;

	tracker = kmem_cache_zalloc(tracker_cache, GFP_KERNEL);
	if (!tracker)
		return ERR_PTR(-ENOMEM);
	cbt_map = cbt_map_create(bdev_nr_sectors(bdev), GFP_KERNEL);
	if (IS_ERR(cbt_map)) {
		ret = PTR_ERR(cbt_map);
		goto fail_free;
	}
	/* Its domain, the tracked disk, is set when it is linked. */
	ret = write_gate_init(&tracker->gate, tracker_submit_bio, NULL);
	if (ret)
		goto fail_put_map;
	INIT_HLIST_NODE(&tracker->hash_node);
	INIT_LIST_HEAD(&tracker->disk_link);
	kref_init(&tracker->kref);
	tracker->dev_id = bdev->bd_dev;
	tracker->disk = bdev->bd_disk;
	tracker->disk_dev = disk_devt(bdev->bd_disk);
	tracker->start_sect = get_start_sect(bdev);
	mutex_init(&tracker->ctl_lock);
	RCU_INIT_POINTER(tracker->cbt_map, cbt_map);
	INIT_RCU_WORK(&tracker->release_work, tracker_release_work);
	return tracker;

fail_put_map:
	cbt_map_put(cbt_map);
fail_free:
	kmem_cache_free(tracker_cache, tracker);
	return ERR_PTR(ret);
}

/* A tracker that was never linked: free it now. */
static void tracker_free_unlinked(struct tracker *tracker)
{
	write_gate_exit(&tracker->gate);
	cbt_map_put(rcu_dereference_protected(tracker->cbt_map, 1));
	kmem_cache_free(tracker_cache, tracker);
}

static struct tracked_disk *tdisk_alloc(const struct gendisk *disk)
{
	struct tracked_disk *tdisk;

	tdisk = kzalloc(sizeof(*tdisk), GFP_KERNEL);
	if (!tdisk)
		return NULL;
	INIT_HLIST_NODE(&tdisk->hash_node);
	tdisk->disk = disk;
	INIT_LIST_HEAD(&tdisk->trackers);
	kref_init(&tdisk->kref);
	return tdisk;
}

/*
 * Link @tracker into the tables and its disk's list, using *@spare as the
 * disk's tracked disk if it has none (*@spare is then taken). Called with
 * tracker_mutex held. Return: false if a tracked disk was needed and
 * *@spare is NULL.
 */
static bool tracker_link(struct tracker *tracker, struct tracked_disk **spare)
{
	struct tracked_disk *tdisk;

	lockdep_assert_held(&tracker_mutex);
	rcu_read_lock();	/* for the lookup's checks: the mutex keeps it */
	tdisk = tdisk_lookup_rcu(tracker->disk);
	rcu_read_unlock();
	if (tdisk) {
		kref_get(&tdisk->kref);
	} else if (*spare) {
		tdisk = *spare;
		*spare = NULL;
		hash_add_rcu(tdisk_table, &tdisk->hash_node,
			     (unsigned long)tdisk->disk);
	} else {
		return false;
	}
	tracker->tdisk = tdisk;
	tracker->gate.domain = tdisk;
	list_add_tail_rcu(&tracker->disk_link, &tdisk->trackers);
	hash_add_rcu(tracker_table, &tracker->hash_node, tracker->dev_id);
	atomic_inc(&tracker_count);
	return true;
}

/*
 * Take the tracker out of the tables, and its tracked disk too when it was
 * the last of its disk. Called with tracker_mutex held, after it was
 * claimed (@is_dead).
 */
static void tracker_unlink(struct tracker *tracker)
{
	lockdep_assert_held(&tracker_mutex);
	hash_del_rcu(&tracker->hash_node);
	list_del_rcu(&tracker->disk_link);
	if (list_empty(&tracker->tdisk->trackers))
		hash_del_rcu(&tracker->tdisk->hash_node);
	atomic_dec(&tracker_count);
}

/* Claim @tracker for detaching: false if another caller did. */
static bool tracker_claim(struct tracker *tracker)
{
	bool claimed;

	mutex_lock(&tracker_mutex);
	claimed = !tracker->is_dead;
	WRITE_ONCE(tracker->is_dead, true);
	mutex_unlock(&tracker_mutex);
	return claimed;
}

/*
 * Detach a claimed tracker: the snapshot holding it lets go first (a taken
 * snapshot's image is marked corrupted while writes are still copied, so
 * no image read can return data written after), then it leaves the
 * tables and the table's reference is dropped. May sleep.
 */
static void tracker_finish(struct tracker *tracker)
{
	snapshot_forget_tracker(tracker);
	mutex_lock(&tracker_mutex);
	tracker_unlink(tracker);
	mutex_unlock(&tracker_mutex);
	tracker_put(tracker);
}

/*
 * Freeze the file system (if any) and the queue, around attach/detach;
 * @memflags keeps what tracker_thaw() needs back.
 */
static int tracker_freeze(struct compat_bdev *ob, unsigned int *memflags)
{
	int ret = compat_bdev_freeze(ob);

	if (ret)
		return ret;
	*memflags = compat_freeze_queue(bdev_get_queue(ob->bdev));
	return 0;
}

static void tracker_thaw(struct compat_bdev *ob, unsigned int memflags)
{
	compat_unfreeze_queue(bdev_get_queue(ob->bdev), memflags);
	compat_bdev_thaw(ob);
}

int tracker_attach(dev_t dev_id)
{
	struct tracked_disk *spare = NULL;
	struct compat_bdev ob;
	struct block_device *bdev;
	struct tracker *tracker, *other;
	unsigned int memflags;
	bool need_tdisk;
	int ret;

	ret = compat_bdev_open(&ob, dev_id);
	if (ret)
		return ret;
	bdev = ob.bdev;
	if (bdev_is_zoned(bdev)) {
		ret = -EOPNOTSUPP;
		goto out_put_bdev;
	}
	/* DAX writes are stores to memory: no bio ever shows them. */
	if (blk_queue_dax(bdev_get_queue(bdev))) {
		ret = -EOPNOTSUPP;
		goto out_put_bdev;
	}
	/*
	 * Our own snapshot images are deleted by this module, whose calls
	 * of del_gendisk() the removal hook does not see: not trackable.
	 */
	if (bdev->bd_disk->fops->owner == THIS_MODULE) {
		ret = -EINVAL;
		goto out_put_bdev;
	}
	if (!bdev_nr_sectors(bdev)) {
		ret = -ENODEV;
		goto out_put_bdev;
	}
	other = tracker_get_by_dev(dev_id);
	if (other) {
		tracker_put(other);
		ret = -EALREADY;
		goto out_put_bdev;
	}

	tracker = tracker_alloc(bdev);
	if (IS_ERR(tracker)) {
		ret = PTR_ERR(tracker);
		goto out_put_bdev;
	}
again:
	/* Allocated now: the queue is frozen below. */
	rcu_read_lock();
	need_tdisk = !tdisk_lookup_rcu(bdev->bd_disk);
	rcu_read_unlock();
	if (need_tdisk && !spare) {
		spare = tdisk_alloc(bdev->bd_disk);
		if (!spare) {
			ret = -ENOMEM;
			goto out_free_tracker;
		}
	}

	ret = tracker_freeze(&ob, &memflags);
	if (ret)
		goto out_free_tracker;

	mutex_lock(&tracker_mutex);
	rcu_read_lock();
	other = tracker_lookup_rcu(dev_id);
	rcu_read_unlock();
	if (other)
		ret = -EALREADY;
	else if (!disk_live(bdev->bd_disk))
		ret = -ENODEV;
	else if (!tracker_link(tracker, &spare))
		ret = -EAGAIN;	/* the disk's last tracker left meanwhile */
	mutex_unlock(&tracker_mutex);

	tracker_thaw(&ob, memflags);
	if (ret == -EAGAIN)
		goto again;
	if (!ret) {
		pr_info("[%u:%u] tracker attached\n", MAJOR(dev_id),
			MINOR(dev_id));
		tracker = NULL;
	}
out_free_tracker:
	if (tracker)
		tracker_free_unlinked(tracker);
	/* Unused: another attach made the disk's meanwhile. */
	kfree(spare);
out_put_bdev:
	compat_bdev_close(&ob);
	return ret;
}

int tracker_detach(struct tracker *tracker)
{
	struct compat_bdev ob;
	dev_t dev_id = tracker->dev_id;
	unsigned int memflags;
	bool frozen = false;
	int ret = 0;

	/* A device that is gone, or cannot be frozen, is detached unfrozen. */
	if (!compat_bdev_open(&ob, dev_id)) {
		frozen = !tracker_freeze(&ob, &memflags);
		if (!frozen)
			compat_bdev_close(&ob);
	}
	if (tracker_claim(tracker))
		tracker_finish(tracker);
	else
		ret = -ENOENT;
	if (frozen) {
		tracker_thaw(&ob, memflags);
		compat_bdev_close(&ob);
	}
	if (ret)
		return ret;
	pr_info("[%u:%u] tracker detached\n", MAJOR(dev_id), MINOR(dev_id));
	return 0;
}

/* Claim one tracker whose device is on @disk (NULL: any), with a reference. */
static struct tracker *tracker_claim_one(const struct gendisk *disk)
{
	struct tracker *tracker;
	int bkt;

	mutex_lock(&tracker_mutex);
	hash_for_each(tracker_table, bkt, tracker, hash_node) {
		if (!tracker->is_dead && (!disk || tracker->disk == disk)) {
			WRITE_ONCE(tracker->is_dead, true);
			tracker_get(tracker);
			mutex_unlock(&tracker_mutex);
			return tracker;
		}
	}
	mutex_unlock(&tracker_mutex);
	return NULL;
}

/**
 * tracker_disk_removed() - Detach the trackers of a removed disk.
 * @disk: The disk, after del_gendisk() returned.
 *
 * Runs after del_gendisk() so that an attach racing with the removal
 * either is undone here or sees the disk dead (disk_live() under
 * tracker_mutex). No freezing: the device is gone. A tracker held only by
 * its table is freed after a grace period, and holds nothing of the disk.
 * May sleep.
 */
static void tracker_disk_removed(struct gendisk *disk)
{
	struct tracker *tracker;

	if (!atomic_read(&tracker_count))
		return;
	while ((tracker = tracker_claim_one(disk))) {
		pr_info("[%u:%u] device removed, tracker detached\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		tracker_finish(tracker);
		tracker_put(tracker);
	}
}

const struct filter_ops tracker_filter_ops = {
	.wants = tracker_wants,
	.submit_bio = tracker_submit_bio,
	.disk_removed = tracker_disk_removed,
};

/* ---------------------------------------------------------------------- */
/* Init and exit                                                          */
/* ---------------------------------------------------------------------- */

int tracker_init(void)
{
	int ret;

	ret = write_gate_module_init();
	if (ret)
		return ret;
	ret = -ENOMEM;
	tracker_cache = kmem_cache_create("blksnap_tracker",
					  sizeof(struct tracker), 0, 0, NULL);
	if (!tracker_cache)
		goto fail_gate;
	/*
	 * Unbound: a release runs on any CPU. (Kernels from 7.x on warn about
	 * a workqueue that says neither WQ_UNBOUND nor WQ_PERCPU.)
	 */
	tracker_wq = alloc_workqueue("blksnap-tracker",
				     WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!tracker_wq)
		goto fail_cache;
	ret = bioset_init(&tracker_bio_set, BIO_POOL_SIZE, 0, 0);
	if (ret)
		goto fail_wq;
	if (enable_test_ioctls && test_lookup_delay_us)
		static_branch_enable(&lookup_delay_key);
	return 0;

fail_wq:
	destroy_workqueue(tracker_wq);
fail_cache:
	kmem_cache_destroy(tracker_cache);
fail_gate:
	write_gate_module_exit();
	return ret;
}

/*
 * Module exit, after the hooks are gone (filter_done()) and the snapshot
 * code dropped its trackers (snapshot_done()): detach what is left, then
 * wait until every tracker and tracked disk is freed (the latter wait for
 * the writes still in flight, whose completion runs our code).
 */
void tracker_done(void)
{
	struct tracker *tracker;

	while ((tracker = tracker_claim_one(NULL))) {
		pr_info("[%u:%u] tracker detached at unload\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		mutex_lock(&tracker_mutex);
		tracker_unlink(tracker);
		mutex_unlock(&tracker_mutex);
		tracker_put(tracker);
		tracker_put(tracker);
	}
	/* The grace periods of queue_rcu_work(), then the frees. */
	rcu_barrier();
	destroy_workqueue(tracker_wq);
	bioset_exit(&tracker_bio_set);
	kmem_cache_destroy(tracker_cache);
	write_gate_module_exit();
}
