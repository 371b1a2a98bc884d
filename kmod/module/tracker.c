// SPDX-License-Identifier: GPL-2.0
/*
 * Trackers: attach, detach, device removal, the I/O path and the
 * per-device commands (cbtinfo, cbtmap, cbtdirty, snapshotadd,
 * snapshotinfo).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/hashtable.h>
#include <linux/sched/mm.h>
#include <linux/blk-mq.h>
#include <linux/bio.h>
#include <linux/capability.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/overflow.h>
#include <linux/delay.h>
#include <linux/jump_label.h>
#include "compat.h"
#include "tracker.h"
#include "cbt_map.h"
#include "filter.h"
#include "params.h"
#include "snapshot.h"

/*
 * tracker_mutex serialises attach, detach, device removal and unload, and
 * guards changes to tracker_table and tracker_count. The I/O path reads
 * tracker_table under RCU only; a tracker leaves the table before its
 * table reference is dropped, and each user holds its own reference, so a
 * tracker found under RCU can be kref_get_unless_zero()'d safely.
 */
static DEFINE_MUTEX(tracker_mutex);
#define TRACKER_HASH_BITS 6
static DEFINE_HASHTABLE(tracker_table, TRACKER_HASH_BITS);
/* Attached trackers; read locklessly as a fast "nothing tracked" test. */
static atomic_t tracker_count = ATOMIC_INIT(0);
/* Frees trackers in process context (the last put may be on the I/O path). */
static struct workqueue_struct *tracker_wq;
/*
 * Trackers come from their own cache, so that slub_debug can poison exactly
 * them (the test VM boots with slub_debug=FZP,blksnap_tracker): a reader
 * that touches a freed tracker then faults or is reported at once.
 */
static struct kmem_cache *tracker_cache;


/*
 * Testing only (test_lookup_delay_us with enable_test_ioctls): widens the
 * window between finding a tracker and using it, where an unlinked tracker
 * freed without a grace period would be touched.
 */
static DEFINE_STATIC_KEY_FALSE(lookup_delay_key);

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

static void tracker_release_work(struct work_struct *work)
{
	struct tracker *tracker = container_of(to_rcu_work(work),
					       struct tracker, release_work);

	pr_debug("[%u:%u] tracker freed\n", MAJOR(tracker->dev_id),
		 MINOR(tracker->dev_id));
	percpu_free_rwsem(&tracker->submit_lock);
	lockdep_unregister_key(&tracker->submit_key);
	cbt_map_put(rcu_dereference_protected(tracker->cbt_map, 1));
	kmem_cache_free(tracker_cache, tracker);
}

/*
 * kref release: any context. The tracker left the table (hash_del_rcu)
 * before its last reference went, but a lookup under rcu_read_lock() on
 * another CPU may still hold its address: it is freed by tracker_wq only
 * after a grace period (queue_rcu_work()).
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

/* ---------------------------------------------------------------------- */
/* The I/O path                                                           */
/* ---------------------------------------------------------------------- */

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

/**
 * tracker_bio_is_tracked() - Is @bio a write to a tracked device?
 * @bio: A bio entering submit_bio_noacct().
 *
 * Called from the ftrace callback, preemption disabled: lockless lookups
 * only. Writes, discards, secure erases and write-zeroes count: they all
 * change data. A partition's bio counts for the whole disk's tracker too.
 */
bool tracker_bio_is_tracked(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	bool found;

	/* Pairs with nothing: a stale value only delays or adds a lookup. */
	if (!atomic_read(&tracker_count) || !bio_changes_data(bio))
		return false;

	rcu_read_lock();
	found = tracker_lookup_rcu(bdev->bd_dev) ||
		(bdev_is_partition(bdev) &&
		 tracker_lookup_rcu(bdev_whole(bdev)->bd_dev));
	rcu_read_unlock();
	return found;
}

/*
 * Take the submit lock for reading. Where the submitter cannot sleep (never
 * seen in practice) only a trylock is possible; if a switch holds the lock
 * the write is marked without it (and without copy-on-write).
 */
static bool submitter_may_sleep(void)
{
	if (IS_ENABLED(CONFIG_PREEMPT_COUNT))
		return preemptible();
	/* Without a preempt count, held spinlocks cannot be seen. */
	return in_task() && !irqs_disabled();
}

/* Results of tracker_submit_lock(). */
enum submit_lock_result {
	SUBMIT_LOCKED,		/* read side held */
	SUBMIT_UNLOCKED,	/* not held: mark anyway, no copy-on-write */
	SUBMIT_WOULD_BLOCK,	/* REQ_NOWAIT bio and a switch holds the lock */
};

static enum submit_lock_result tracker_submit_lock(struct tracker *tracker,
						   struct bio *bio)
{
	if (!(bio->bi_opf & REQ_NOWAIT) && submitter_may_sleep()) {
		percpu_down_read(&tracker->submit_lock);
		return SUBMIT_LOCKED;
	}
	if (percpu_down_read_trylock(&tracker->submit_lock))
		return SUBMIT_LOCKED;
	if (bio->bi_opf & REQ_NOWAIT)
		return SUBMIT_WOULD_BLOCK;
	pr_warn_ratelimited("[%u:%u] write marked outside the submit lock\n",
			    MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
	return SUBMIT_UNLOCKED;
}

static void tracker_mark(struct tracker *tracker, sector_t sector,
			 sector_t count)
{
	struct cbt_map *cbt_map;

	rcu_read_lock();
	cbt_map = rcu_dereference(tracker->cbt_map);
	cbt_map_set(cbt_map, sector, count);
	rcu_read_unlock();
}

/**
 * tracker_submit_bio() - Record a write bio and submit it.
 * @bio: A bio for which tracker_bio_is_tracked() was true.
 *
 * Marks the CBT map of the bio's device (sectors relative to it) and, for a
 * partition, of its whole disk (sectors relative to the disk), gives the
 * bio to snapshot_cow_bio() while a snapshot is taken, then submits it
 * unless the snapshot code took it. The submit locks are held until the bio
 * entered the block layer, so a CBT switch sees it wholly before or after.
 * A REQ_NOWAIT bio that would wait for a switch is ended with
 * BLK_STS_AGAIN. A write past the device's current end is not marked: the
 * block layer fails it. Same context as submit_bio_noacct().
 */
void tracker_submit_bio(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	struct tracker *dev_tracker = NULL, *disk_tracker = NULL;
	enum submit_lock_result dev_lock = SUBMIT_UNLOCKED;
	enum submit_lock_result disk_lock = SUBMIT_UNLOCKED;
	struct bvec_iter iter = bio->bi_iter;
	sector_t count = bio_sectors(bio);
	bool taken = false;

	rcu_read_lock();
	dev_tracker = tracker_lookup_rcu(bdev->bd_dev);
	if (dev_tracker && !kref_get_unless_zero(&dev_tracker->kref))
		dev_tracker = NULL;
	if (bdev_is_partition(bdev)) {
		disk_tracker = tracker_lookup_rcu(bdev_whole(bdev)->bd_dev);
		if (disk_tracker && !kref_get_unless_zero(&disk_tracker->kref))
			disk_tracker = NULL;
	}
	rcu_read_unlock();

	if (bio_end_sector(bio) > bdev_nr_sectors(bdev))
		goto submit;

	/* A partition's lock before its disk's. */
	if (dev_tracker) {
		dev_lock = tracker_submit_lock(dev_tracker, bio);
		if (dev_lock == SUBMIT_WOULD_BLOCK)
			goto would_block;
	}
	if (disk_tracker) {
		disk_lock = tracker_submit_lock(disk_tracker, bio);
		if (disk_lock == SUBMIT_WOULD_BLOCK)
			goto would_block;
	}

	if (dev_tracker)
		tracker_mark(dev_tracker, iter.bi_sector, count);
	if (disk_tracker)
		tracker_mark(disk_tracker, iter.bi_sector + bdev->bd_start_sect,
			     count);

	if (dev_lock == SUBMIT_LOCKED &&
	    atomic_read(&dev_tracker->snapshot_is_taken))
		taken = snapshot_cow_bio(dev_tracker, bio, &iter);
	if (!taken && disk_lock == SUBMIT_LOCKED &&
	    atomic_read(&disk_tracker->snapshot_is_taken)) {
		struct bvec_iter disk_iter = iter;

		disk_iter.bi_sector += bdev->bd_start_sect;
		taken = snapshot_cow_bio(disk_tracker, bio, &disk_iter);
	}
submit:
	if (!taken)
		filter_submit_bio_noacct(bio);
	goto out;

would_block:
	bio_wouldblock_error(bio);
out:
	if (disk_lock == SUBMIT_LOCKED)
		percpu_up_read(&disk_tracker->submit_lock);
	if (dev_lock == SUBMIT_LOCKED)
		percpu_up_read(&dev_tracker->submit_lock);
	tracker_put(disk_tracker);
	tracker_put(dev_tracker);
}

/* ---------------------------------------------------------------------- */
/* CBT switch                                                             */
/* ---------------------------------------------------------------------- */

/*
 * The CBT switch of a snapshot take, optionally turning copy-on-write on.
 * See tracker_take_snapshot() in tracker.h. May sleep.
 */
static int tracker_switch(struct tracker *tracker, struct block_device *bdev,
			  bool set_taken)
{
	struct request_queue *q = bdev_get_queue(bdev);
	struct cbt_map *cbt_map, *old_map = NULL;
	unsigned int memflags;
	sector_t capacity;
	int ret = 0;

	might_sleep();
	if (READ_ONCE(tracker->is_dead))
		return -ENODEV;

	percpu_down_write(&tracker->submit_lock);
	/* Also a no-I/O allocation scope: the new map is allocated below. */
	memflags = compat_freeze_queue(q);

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
	if (set_taken)
		atomic_set(&tracker->snapshot_is_taken, 1);
out:
	compat_unfreeze_queue(q, memflags);
	percpu_up_write(&tracker->submit_lock);

	if (old_map) {
		synchronize_rcu();
		cbt_map_put(old_map);
	}
	return ret;
}

int tracker_take_snapshot(struct tracker *tracker, struct block_device *bdev)
{
	return tracker_switch(tracker, bdev, true);
}

void tracker_release_snapshot(struct tracker *tracker)
{
	might_sleep();
	percpu_down_write(&tracker->submit_lock);
	atomic_set(&tracker->snapshot_is_taken, 0);
	percpu_up_write(&tracker->submit_lock);
}

/* ---------------------------------------------------------------------- */
/* Attach, detach, removal                                                */
/* ---------------------------------------------------------------------- */

/*
 * A per-device request as either route gives it: the control device names
 * the device by number, the BLKFILTER requests on a device fd by the fd.
 */
struct tracker_request {
	dev_t dev_id;
	u32 cmd;
	u32 optlen;
	void __user *opt;
};

static bool request_name_ok(const __u8 name[BLKFILTER_NAME_LENGTH])
{
	return !strncmp(name, BLKSNAP_FILTER_NAME, BLKFILTER_NAME_LENGTH);
}

/*
 * The common prologue of the control-device ioctls: the caller must have
 * CAP_SYS_ADMIN; copy and check the request: the name must be "blksnap"
 * and the device number valid. Return: 0, -EPERM, -EFAULT or -EINVAL.
 */
static int request_get(struct blksnap_filter_request __user *uarg,
		       struct tracker_request *req)
{
	struct blksnap_filter_request arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (!request_name_ok(arg.name))
		return -EINVAL;
	if (arg.dev_major > MAJOR(~0U) || arg.dev_minor > MINOR(~0U) ||
	    MKDEV(arg.dev_major, arg.dev_minor) == 0)
		return -EINVAL;
	req->dev_id = MKDEV(arg.dev_major, arg.dev_minor);
	req->cmd = arg.cmd;
	req->optlen = arg.optlen;
	req->opt = u64_to_user_ptr(arg.opt);
	return 0;
}

/*
 * The attached tracker of the request's device.
 * Return: the tracker (put it with tracker_put()) or ERR_PTR(-ENOENT).
 */
static struct tracker *request_tracker(const struct tracker_request *req)
{
	struct tracker *tracker = tracker_get_by_dev(req->dev_id);

	return tracker ? tracker : ERR_PTR(-ENOENT);
}

static struct tracker *tracker_alloc(struct block_device *bdev)
{
	struct tracker *tracker;
	struct cbt_map *cbt_map;
	int ret;

	tracker = kmem_cache_zalloc(tracker_cache, GFP_KERNEL);
	if (!tracker)
		return ERR_PTR(-ENOMEM);
	/*
	 * One lockdep class per tracker: the I/O path legitimately holds two
	 * submit locks at once (a partition's, then its disk's; or a stacked
	 * device's, then that of a tracked device below it).
	 */
	lockdep_register_key(&tracker->submit_key);
	ret = __percpu_init_rwsem(&tracker->submit_lock,
				  "tracker->submit_lock", &tracker->submit_key);
	if (ret)
		goto fail_free;
	cbt_map = cbt_map_create(bdev_nr_sectors(bdev), GFP_KERNEL);
	if (IS_ERR(cbt_map)) {
		ret = PTR_ERR(cbt_map);
		goto fail_free_rwsem;
	}

	INIT_HLIST_NODE(&tracker->hash_node);
	INIT_LIST_HEAD(&tracker->link);
	kref_init(&tracker->kref);
	tracker->dev_id = bdev->bd_dev;
	tracker->disk = bdev->bd_disk;
	mutex_init(&tracker->ctl_lock);
	RCU_INIT_POINTER(tracker->cbt_map, cbt_map);
	atomic_set(&tracker->snapshot_is_taken, 0);
	INIT_RCU_WORK(&tracker->release_work, tracker_release_work);
	return tracker;

fail_free_rwsem:
	percpu_free_rwsem(&tracker->submit_lock);
fail_free:
	lockdep_unregister_key(&tracker->submit_key);
	kmem_cache_free(tracker_cache, tracker);
	return ERR_PTR(ret);
}

/* Take the tracker out of the table. Called with tracker_mutex held. */
static void tracker_unlink(struct tracker *tracker)
{
	lockdep_assert_held(&tracker_mutex);
	hash_del_rcu(&tracker->hash_node);
	WRITE_ONCE(tracker->is_dead, true);
	atomic_dec(&tracker_count);
}

/*
 * After unlinking: let the snapshot code drop the tracker, then drop the
 * table's reference. May sleep.
 */
static void tracker_finish(struct tracker *tracker)
{
	snapshot_forget_tracker(tracker);
	tracker_put(tracker);
}

/*
 * Freeze the file system (if any) and the queue, around attach/detach;
 * @memflags keeps what tracker_thaw() needs back.
 */
static int tracker_freeze(struct block_device *bdev, unsigned int *memflags)
{
	int ret = bdev_freeze(bdev);

	if (ret)
		return ret;
	*memflags = compat_freeze_queue(bdev_get_queue(bdev));
	return 0;
}

static void tracker_thaw(struct block_device *bdev, unsigned int memflags)
{
	compat_unfreeze_queue(bdev_get_queue(bdev), memflags);
	bdev_thaw(bdev);
}

/**
 * request_attach() - Attach (IOCTL_BLKSNAP_FILTER_ATTACH, BLKFILTER_ATTACH).
 * @req: The request (cmd, optlen and opt are ignored).
 *
 * Freezes the device's file system and queue, adds the tracker, thaws.
 * May sleep.
 *
 * Return: 0; -EINVAL (a snapshot image of this module); -ENXIO/-ENODEV (no such
 * device, zero capacity, device going away); -EOPNOTSUPP (zoned device); -EALREADY (already attached);
 * -ENOMEM; -EFBIG (device too big for the map).
 */
static int request_attach(const struct tracker_request *req)
{
	struct compat_bdev ob;
	struct block_device *bdev;
	struct tracker *tracker, *other;
	unsigned int memflags;
	dev_t dev_id = req->dev_id;
	int ret;

	ret = compat_bdev_open(&ob, dev_id);
	if (ret)
		return ret;
	bdev = ob.bdev;
	if (bdev_is_zoned(bdev)) {
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

	ret = tracker_freeze(bdev, &memflags);
	if (ret)
		goto out_put_tracker;

	mutex_lock(&tracker_mutex);
	rcu_read_lock();
	other = tracker_lookup_rcu(dev_id);
	rcu_read_unlock();
	if (other) {
		ret = -EALREADY;
	} else if (!disk_live(bdev->bd_disk)) {
		ret = -ENODEV;
	} else {
		hash_add_rcu(tracker_table, &tracker->hash_node, dev_id);
		atomic_inc(&tracker_count);
	}
	mutex_unlock(&tracker_mutex);

	tracker_thaw(bdev, memflags);
	if (!ret) {
		pr_info("[%u:%u] tracker attached\n", MAJOR(dev_id),
			MINOR(dev_id));
		goto out_put_bdev;
	}
out_put_tracker:
	tracker_put(tracker);
out_put_bdev:
	compat_bdev_close(&ob);
	return ret;
}

/**
 * request_detach() - Detach (IOCTL_BLKSNAP_FILTER_DETACH, BLKFILTER_DETACH).
 * @req: The request (cmd, optlen and opt are ignored).
 *
 * Freezes the device's file system and queue, removes the tracker (a
 * snapshot holding it forgets it), thaws. The CBT map is lost. May sleep.
 *
 * Return: 0; -ENOENT (not attached).
 */
static int request_detach(const struct tracker_request *req)
{
	struct compat_bdev ob;
	struct tracker *tracker;
	unsigned int memflags;
	bool unlinked = false, frozen = false;
	dev_t dev_id;
	int ret = 0;

	tracker = request_tracker(req);
	if (IS_ERR(tracker))
		return PTR_ERR(tracker);
	dev_id = tracker->dev_id;

	/* A device that is gone, or cannot be frozen, is detached unfrozen. */
	if (!compat_bdev_open(&ob, dev_id)) {
		frozen = !tracker_freeze(ob.bdev, &memflags);
		if (!frozen)
			compat_bdev_close(&ob);
	}

	mutex_lock(&tracker_mutex);
	if (!tracker->is_dead) {
		tracker_unlink(tracker);
		unlinked = true;
	}
	mutex_unlock(&tracker_mutex);

	if (frozen) {
		tracker_thaw(ob.bdev, memflags);
		compat_bdev_close(&ob);
	}

	if (unlinked) {
		pr_info("[%u:%u] tracker detached\n", MAJOR(dev_id),
			MINOR(dev_id));
		tracker_finish(tracker);
	} else {
		ret = -ENOENT;
	}
	tracker_put(tracker);
	return ret;
}

/* Unlink one tracker whose device is on @disk (NULL: any). */
static struct tracker *tracker_unlink_one(struct gendisk *disk)
{
	struct tracker *tracker;
	int bkt;

	lockdep_assert_held(&tracker_mutex);
	hash_for_each(tracker_table, bkt, tracker, hash_node) {
		if (!disk || tracker->disk == disk) {
			tracker_unlink(tracker);
			return tracker;
		}
	}
	return NULL;
}

/**
 * tracker_disk_removed() - Detach the trackers of a removed disk.
 * @disk: The disk, after del_gendisk() returned.
 *
 * Runs after del_gendisk() so that an attach racing with the removal
 * either is undone here or sees the disk dead (disk_live() under
 * tracker_mutex). The trackers' bdevs stay allocated (their reference);
 * no freezing: the device is gone. May sleep.
 */
void tracker_disk_removed(struct gendisk *disk)
{
	struct tracker *tracker;

	if (!atomic_read(&tracker_count))
		return;
	for (;;) {
		mutex_lock(&tracker_mutex);
		tracker = tracker_unlink_one(disk);
		mutex_unlock(&tracker_mutex);
		if (!tracker)
			break;
		pr_info("[%u:%u] device removed, tracker detached\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		tracker_finish(tracker);
	}
}

/* ---------------------------------------------------------------------- */
/* Per-device commands                                                    */
/* ---------------------------------------------------------------------- */

static int ctl_cbtinfo(struct tracker *tracker, void __user *opt, u32 optlen)
{
	struct blksnap_cbtinfo arg = {};
	struct cbt_map *cbt_map;
	unsigned long flags;

	if (optlen < sizeof(arg))
		return -EINVAL;

	cbt_map = tracker_cbt_map_get(tracker);
	arg.device_capacity = (u64)cbt_map->device_capacity << SECTOR_SHIFT;
	arg.block_size = 1U << cbt_map->blk_size_shift;
	arg.block_count = cbt_map->blk_count;
	spin_lock_irqsave(&cbt_map->lock, flags);
	export_uuid(arg.generation_id.b, &cbt_map->generation_id);
	arg.changes_number = cbt_map->snap_number_previous;
	spin_unlock_irqrestore(&cbt_map->lock, flags);
	cbt_map_put(cbt_map);

	if (copy_to_user(opt, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

/*
 * The read map is copied through a bounce buffer (the map's lock cannot be
 * held across copy_to_user()), in pieces of CBTMAP_CHUNK bytes.
 */
#define CBTMAP_CHUNK 4096U

static int ctl_cbtmap(struct tracker *tracker, void __user *opt, u32 optlen)
{
	struct blksnap_cbtmap arg;
	struct cbt_map *cbt_map;
	u8 __user *ubuf;
	unsigned long flags;
	u32 done = 0;
	u8 *bounce;
	int ret = 0;

	if (optlen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, opt, sizeof(arg)))
		return -EFAULT;
	if (!arg.length)
		return -EINVAL;

	bounce = kmalloc(CBTMAP_CHUNK, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	cbt_map = tracker_cbt_map_get(tracker);
	/* Written so that neither test can wrap. */
	if (arg.offset > cbt_map->blk_count ||
	    arg.length > cbt_map->blk_count - arg.offset) {
		ret = -ENODATA;
		goto out;
	}
	ubuf = u64_to_user_ptr(arg.buffer);
	while (done < arg.length) {
		u32 n = min(CBTMAP_CHUNK, arg.length - done);

		spin_lock_irqsave(&cbt_map->lock, flags);
		if (cbt_map->is_corrupted) {
			spin_unlock_irqrestore(&cbt_map->lock, flags);
			ret = -EFAULT;
			goto out;
		}
		memcpy(bounce, cbt_map->read_map + arg.offset + done, n);
		spin_unlock_irqrestore(&cbt_map->lock, flags);

		if (copy_to_user(ubuf + done, bounce, n)) {
			ret = -EFAULT;
			goto out;
		}
		done += n;
		cond_resched();
	}
out:
	cbt_map_put(cbt_map);
	kfree(bounce);
	return ret;
}

static int ctl_cbtdirty(struct tracker *tracker, void __user *opt, u32 optlen)
{
	struct blksnap_sectors __user *uranges;
	struct blksnap_sectors *ranges;
	struct blksnap_cbtdirty arg;
	struct cbt_map *cbt_map;
	u32 i;
	int ret = 0;

	if (optlen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, opt, sizeof(arg)))
		return -EFAULT;
	if (!arg.count || arg.count > BLKSNAP_CBTDIRTY_MAX_RANGES)
		return -EINVAL;

	ranges = kvmalloc_array(arg.count, sizeof(*ranges), GFP_KERNEL);
	if (!ranges)
		return -ENOMEM;
	uranges = u64_to_user_ptr(arg.dirty_sectors);
	for (i = 0; i < arg.count; i++) {
		if (copy_from_user(&ranges[i], &uranges[i], sizeof(ranges[i]))) {
			ret = -EFAULT;
			goto out_free;
		}
	}

	/* Check every range before marking any. */
	cbt_map = tracker_cbt_map_get(tracker);
	for (i = 0; i < arg.count; i++) {
		if (!cbt_map_range_valid(cbt_map, ranges[i].offset,
					 ranges[i].count)) {
			ret = -EINVAL;
			goto out_put;
		}
	}
	if (cbt_map_is_corrupted(cbt_map)) {
		ret = -EINVAL;
		goto out_put;
	}
	for (i = 0; i < arg.count; i++) {
		/* Valid ranges; fails only if the map got corrupted since. */
		ret = cbt_map_set_both(cbt_map, ranges[i].offset,
				       ranges[i].count);
		if (ret)
			break;
		cond_resched();
	}
out_put:
	cbt_map_put(cbt_map);
out_free:
	kvfree(ranges);
	return ret;
}

static int ctl_snapshotadd(struct tracker *tracker, void __user *opt,
			   u32 optlen)
{
	struct blksnap_snapshotadd arg;
	struct compat_bdev ob;
	uuid_t id;
	int ret;

	if (optlen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, opt, sizeof(arg)))
		return -EFAULT;
	import_uuid(&id, arg.id.b);
	if (compat_bdev_open(&ob, tracker->dev_id))
		return -ENODEV;
	mutex_lock(&tracker->ctl_lock);
	ret = snapshot_add_device(&id, tracker, ob.bdev);
	mutex_unlock(&tracker->ctl_lock);
	compat_bdev_close(&ob);
	return ret;
}

static int ctl_snapshotinfo(struct tracker *tracker, void __user *opt,
			    u32 optlen)
{
	struct blksnap_snapshotinfo arg = {};
	int ret;

	if (optlen < sizeof(arg))
		return -EINVAL;
	mutex_lock(&tracker->ctl_lock);
	ret = snapshot_device_info(tracker, &arg);
	mutex_unlock(&tracker->ctl_lock);
	if (ret)
		return ret;
	if (copy_to_user(opt, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

/**
 * request_ctl() - A per-device command (IOCTL_BLKSNAP_FILTER_CTL,
 *	BLKFILTER_CTL).
 * @req: The request; cmd selects the command, opt and optlen its payload.
 *
 * The CBT commands work on a reference
 * to the map and its own lock; the snapshot commands take
 * tracker->ctl_lock, never across a copy from or to user memory (device
 * removal takes it too). May sleep.
 *
 * Return: 0 or -errno (see docs/kernel-abi.md); -ENOENT if the device has
 * no tracker, -ENOTTY for an unknown command.
 */
static int request_ctl(const struct tracker_request *req)
{
	struct tracker *tracker;
	void __user *opt = req->opt;
	u32 optlen = req->optlen;
	int ret;

	tracker = request_tracker(req);
	if (IS_ERR(tracker))
		return PTR_ERR(tracker);

	switch (req->cmd) {
	case BLKFILTER_CTL_BLKSNAP_CBTINFO:
		ret = ctl_cbtinfo(tracker, opt, optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_CBTMAP:
		ret = ctl_cbtmap(tracker, opt, optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_CBTDIRTY:
		ret = ctl_cbtdirty(tracker, opt, optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD:
		ret = ctl_snapshotadd(tracker, opt, optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO:
		ret = ctl_snapshotinfo(tracker, opt, optlen);
		break;
	default:
		ret = -ENOTTY;
	}
	tracker_put(tracker);
	return ret;
}

/* The control device's requests (main.c): same checks, same handlers. */
int tracker_ioctl_attach(struct blksnap_filter_request __user *uarg)
{
	struct tracker_request req;
	int ret = request_get(uarg, &req);

	return ret ? ret : request_attach(&req);
}

int tracker_ioctl_detach(struct blksnap_filter_request __user *uarg)
{
	struct tracker_request req;
	int ret = request_get(uarg, &req);

	return ret ? ret : request_detach(&req);
}

int tracker_ioctl_ctl(struct blksnap_filter_request __user *uarg)
{
	struct tracker_request req;
	int ret = request_get(uarg, &req);

	return ret ? ret : request_ctl(&req);
}

/**
 * tracker_ioctl_blkfilter() - A BLKFILTER request on a device fd.
 * @dev_id: The device the fd is open on.
 * @cmd: BLKFILTER_ATTACH, BLKFILTER_DETACH or BLKFILTER_CTL.
 * @argp: struct blkfilter_attach, _detach or _ctl.
 *
 * The per-device transport of ioctl_hook.c: the same capability check
 * (upstream has none), name check and handlers as the control device's
 * requests, so both routes give the same results and errors. May sleep.
 *
 * Return: 0 or -errno: -EPERM, -EFAULT, -EINVAL (name), then those of the
 * handlers; -ENOTTY for another @cmd.
 */
int tracker_ioctl_blkfilter(dev_t dev_id, unsigned int cmd, void __user *argp)
{
	struct tracker_request req = { .dev_id = dev_id };
	union {
		struct blkfilter_attach attach;
		struct blkfilter_detach detach;
		struct blkfilter_ctl ctl;
	} arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	switch (cmd) {
	case BLKFILTER_ATTACH:
		if (copy_from_user(&arg.attach, argp, sizeof(arg.attach)))
			return -EFAULT;
		if (!request_name_ok(arg.attach.name))
			return -EINVAL;
		return request_attach(&req);
	case BLKFILTER_DETACH:
		if (copy_from_user(&arg.detach, argp, sizeof(arg.detach)))
			return -EFAULT;
		if (!request_name_ok(arg.detach.name))
			return -EINVAL;
		return request_detach(&req);
	case BLKFILTER_CTL:
		if (copy_from_user(&arg.ctl, argp, sizeof(arg.ctl)))
			return -EFAULT;
		if (!request_name_ok(arg.ctl.name))
			return -EINVAL;
		req.cmd = arg.ctl.cmd;
		req.optlen = arg.ctl.optlen;
		req.opt = u64_to_user_ptr(arg.ctl.opt);
		return request_ctl(&req);
	default:
		return -ENOTTY;
	}
}

/**
 * tracker_ioctl_test_cbt_switch() - IOCTL_BLKSNAP_TEST_CBT_SWITCH.
 * @uarg: struct blksnap_filter_request (only the device number is used).
 *
 * The CBT switch of a snapshot take, without a snapshot. main.c answers it
 * only when loaded with enable_test_ioctls=1. May sleep.
 *
 * Return: 0; -EPERM; -EFAULT; -EINVAL; -ENOENT; -ENODEV; -ENOMEM.
 */
int tracker_ioctl_test_cbt_switch(struct blksnap_filter_request __user *uarg)
{
	struct tracker_request req;
	struct compat_bdev ob;
	struct tracker *tracker;
	int ret;

	ret = request_get(uarg, &req);
	if (ret)
		return ret;
	tracker = request_tracker(&req);
	if (IS_ERR(tracker))
		return PTR_ERR(tracker);
	if (compat_bdev_open(&ob, tracker->dev_id)) {
		ret = -ENODEV;
	} else {
		ret = tracker_switch(tracker, ob.bdev, false);
		compat_bdev_close(&ob);
	}
	tracker_put(tracker);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Init and exit                                                          */
/* ---------------------------------------------------------------------- */

int tracker_init(void)
{
	tracker_cache = kmem_cache_create("blksnap_tracker",
					  sizeof(struct tracker), 0, 0, NULL);
	if (!tracker_cache)
		return -ENOMEM;
	/*
	 * Unbound: a release runs on any CPU. (Kernels from 7.x on warn about
	 * a workqueue that says neither WQ_UNBOUND nor WQ_PERCPU.)
	 */
	tracker_wq = alloc_workqueue("blksnap-tracker",
				     WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!tracker_wq) {
		kmem_cache_destroy(tracker_cache);
		return -ENOMEM;
	}
	if (enable_test_ioctls && test_lookup_delay_us)
		static_branch_enable(&lookup_delay_key);
	return 0;
}

/*
 * Module exit, after the hooks are gone (filter_done()) and the snapshot
 * code dropped its trackers (snapshot_done()): detach what is left.
 */
void tracker_done(void)
{
	struct tracker *tracker;

	for (;;) {
		mutex_lock(&tracker_mutex);
		tracker = tracker_unlink_one(NULL);
		mutex_unlock(&tracker_mutex);
		if (!tracker)
			break;
		pr_info("[%u:%u] tracker detached at unload\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		tracker_put(tracker);
	}
	/* Wait for the grace periods of queue_rcu_work(), then the frees. */
	rcu_barrier();
	destroy_workqueue(tracker_wq);
	kmem_cache_destroy(tracker_cache);
}
