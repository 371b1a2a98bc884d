// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshots: create, add devices, take, collect, wait for events, destroy.
 *
 * A snapshot holds a difference storage, an event queue and a list of
 * trackers. Taking it creates, per device, a diff area (copy-on-write
 * state) and, once every device switched its CBT map and started
 * copy-on-write, an image disk. Destroying it removes the images, stops
 * copy-on-write (the trackers keep tracking) and releases the storage.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-snapshot: " fmt

#include <linux/errno.h>
#include <linux/string.h>
#include <linux/slab.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/kref.h>
#include <linux/uaccess.h>
#include <linux/capability.h>
#include <linux/limits.h>
#include <linux/blkdev.h>
#include "compat.h"
#include "snapshot.h"
#include "snapshot_params.h"
#include "tracker.h"
#include "diff_storage.h"
#include "diff_area.h"
#include "event_queue.h"
#include "snapimage.h"
#include "dev_stack.h"
#include "cbt_map.h"

enum snapshot_state {
	SNAPSHOT_CREATED,
	SNAPSHOT_TAKING,
	SNAPSHOT_TAKEN,
	SNAPSHOT_DESTROYED,
};

/**
 * struct snapshot - A snapshot.
 * @link: In &snapshots, under &snapshots_lock.
 * @kref: References: the list holds one, each user (ioctl) its own.
 * @id: The snapshot's id. Immutable.
 * @storage: The difference storage. Immutable.
 * @storage_stack: The devices the storage rests on, as last looked at
 *	(create, snapshotadd, take). Under &snapshots_lock.
 * @reaches: Scratch of snapshot_storage_cycle(), under &snapshots_lock.
 * @events: The event queue.
 * @op_lock: Serialises take and destroy. Outermost lock (see snapshot.h).
 * @lock: Guards @devices, @count and @state.
 * @devices: The devices (struct snapshot_device).
 * @count: Entries in @devices.
 * @state: enum snapshot_state.
 */
struct snapshot {
	struct list_head link;
	struct kref kref;
	uuid_t id;
	struct diff_storage *storage;
	struct dev_stack *storage_stack;
	bool reaches;
	struct event_queue events;

	struct mutex op_lock;

	struct mutex lock;
	struct list_head devices;
	unsigned int count;
	int state;
};

/**
 * struct snapshot_device - A device of a snapshot: what tracker->snapdev
 *	points to.
 * @link: In &snapshot.devices, under &snapshot.lock.
 * @snapshot: The snapshot. Immutable.
 * @tracker: The device's tracker (a reference). Immutable.
 * @diff_area: The copy-on-write state, from take to destroy. Written under
 *	tracker->ctl_lock; set before tracker->cow_on is set and cleared
 *	after it is cleared, so the I/O path reads it without a lock.
 * @image: The image disk, from take to destroy (under tracker->ctl_lock).
 */
struct snapshot_device {
	struct list_head link;
	struct snapshot *snapshot;
	struct tracker *tracker;
	struct diff_area *diff_area;
	struct gendisk *image;
};

/* Guards &snapshots. */
static DEFINE_MUTEX(snapshots_lock);
static LIST_HEAD(snapshots);

static void snapshot_release(struct kref *kref)
{
	struct snapshot *snap = container_of(kref, struct snapshot, kref);

	WARN_ON(!list_empty(&snap->devices));
	kfree(snap->storage_stack);
	diff_storage_put(snap->storage);
	event_queue_done(&snap->events);
	kfree(snap);
}

static void snapshot_put(struct snapshot *snap)
{
	kref_put(&snap->kref, snapshot_release);
}

/* Called with snapshots_lock held. */
static struct snapshot *snapshot_find(const uuid_t *id)
{
	struct snapshot *snap;

	lockdep_assert_held(&snapshots_lock);
	list_for_each_entry(snap, &snapshots, link)
		if (uuid_equal(&snap->id, id))
			return snap;
	return NULL;
}

static struct snapshot *snapshot_get_by_id(const uuid_t *id)
{
	struct snapshot *snap;

	mutex_lock(&snapshots_lock);
	snap = snapshot_find(id);
	if (snap)
		kref_get(&snap->kref);
	mutex_unlock(&snapshots_lock);
	return snap;
}

/*
 * The prologue of the ioctls that name a snapshot: the caller must have
 * CAP_SYS_ADMIN, then the id is copied in. Return: 0, -EPERM or -EFAULT.
 */
static int snapshot_get_uuid(struct blksnap_uuid __user *uarg, uuid_t *id)
{
	struct blksnap_uuid arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	import_uuid(id, arg.b);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Where the difference storage rests                                     */
/* ---------------------------------------------------------------------- */

/*
 * The devices @ds rests on, looked at now (an empty stack for a storage
 * with no block device). NULL without memory. May sleep; no locks held.
 */
static struct dev_stack *snapshot_storage_stack(struct diff_storage *ds)
{
	struct dev_stack *stack = kzalloc(sizeof(*stack), GFP_KERNEL);

	if (stack && diff_storage_dev(ds))
		dev_stack_build(diff_storage_dev(ds), stack);
	return stack;
}

/*
 * Replace @snap's storage stack by a fresh look (stacks change: a device
 * mapper table is reloaded, a loop device rebound). Return: 0 or -ENOMEM.
 */
static int snapshot_storage_refresh(struct snapshot *snap)
{
	struct dev_stack *stack = snapshot_storage_stack(snap->storage);

	if (!stack)
		return -ENOMEM;
	mutex_lock(&snapshots_lock);
	swap(stack, snap->storage_stack);
	mutex_unlock(&snapshots_lock);
	kfree(stack);
	return 0;
}

/*
 * Does @from's storage rest on a device of @to (or on @dev, whose whole
 * disk is @whole, when @dev is not 0)? Return: the depth of the first
 * device found in the storage's stack (0: the storage's own device), or -1.
 * Called with snapshots_lock held.
 */
static int snapshot_stores_on(struct snapshot *from, struct snapshot *to,
			      dev_t dev, dev_t whole)
{
	struct snapshot_device *sd;
	int depth = -1;

	lockdep_assert_held(&snapshots_lock);
	if (dev)
		depth = dev_stack_find(from->storage_stack, dev, whole);
	mutex_lock(&to->lock);
	list_for_each_entry(sd, &to->devices, link) {
		if (depth >= 0)
			break;
		depth = dev_stack_find(from->storage_stack, sd->tracker->dev_id,
				       sd->tracker->disk_dev);
	}
	mutex_unlock(&to->lock);
	return depth;
}

/*
 * Would a copy-on-write of @snap (with the device @dev added, if not 0)
 * wait for itself? Its storage resting on one of its devices: -EBUSY for
 * the storage's own device (or a partition or whole disk of it), -EDEADLK
 * through a stacked layer (device-mapper, md, a loop device's backing
 * file). Or a ring of snapshots, each storing on a device of the next and
 * the last on one of @snap's: -EDEADLK. Return: 0 if neither. Called with
 * snapshots_lock held.
 */
static int snapshot_storage_cycle(struct snapshot *snap, dev_t dev,
				  dev_t whole)
{
	struct snapshot *s, *t;
	bool grew = true;
	int depth;

	lockdep_assert_held(&snapshots_lock);
	depth = snapshot_stores_on(snap, snap, dev, whole);
	if (depth >= 0)
		return depth ? -EDEADLK : -EBUSY;

	/* The snapshots @snap's copies write through, and so on. */
	list_for_each_entry(s, &snapshots, link)
		s->reaches = false;
	snap->reaches = true;
	while (grew) {
		grew = false;
		list_for_each_entry(s, &snapshots, link) {
			if (!s->reaches)
				continue;
			list_for_each_entry(t, &snapshots, link) {
				if (t->reaches || t == snap ||
				    snapshot_stores_on(s, t, 0, 0) < 0)
					continue;
				t->reaches = true;
				grew = true;
			}
		}
	}
	/* Does one of them write through one of @snap's devices? */
	list_for_each_entry(s, &snapshots, link) {
		if (s != snap && s->reaches &&
		    snapshot_stores_on(s, snap, dev, whole) >= 0)
			return -EDEADLK;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Create                                                                 */
/* ---------------------------------------------------------------------- */

int snapshot_ioctl_create(struct blksnap_snapshot_create __user *uarg)
{
	struct blksnap_snapshot_create arg;
	struct snapshot *snap;
	char *path;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (!arg.diff_storage_limit_sect)
		return -EINVAL;
	path = strndup_user(u64_to_user_ptr(arg.diff_storage_filename),
			    PATH_MAX);
	if (IS_ERR(path))
		return PTR_ERR(path);

	snap = kzalloc(sizeof(*snap), GFP_KERNEL);
	if (!snap) {
		ret = -ENOMEM;
		goto out_free_path;
	}
	INIT_LIST_HEAD(&snap->link);
	kref_init(&snap->kref);
	uuid_gen(&snap->id);
	event_queue_init(&snap->events);
	mutex_init(&snap->op_lock);
	mutex_init(&snap->lock);
	INIT_LIST_HEAD(&snap->devices);
	snap->state = SNAPSHOT_CREATED;

	snap->storage = diff_storage_open(path, arg.diff_storage_limit_sect,
					  &snap->events);
	if (IS_ERR(snap->storage)) {
		ret = PTR_ERR(snap->storage);
		snap->storage = NULL;
		goto out_put;
	}

	snap->storage_stack = snapshot_storage_stack(snap->storage);
	if (!snap->storage_stack) {
		ret = -ENOMEM;
		goto out_put;
	}

	export_uuid(arg.id.b, &snap->id);
	if (copy_to_user(&uarg->id, &arg.id, sizeof(arg.id))) {
		ret = -EFAULT;
		goto out_put;
	}

	mutex_lock(&snapshots_lock);
	list_add_tail(&snap->link, &snapshots);
	mutex_unlock(&snapshots_lock);
	pr_info("snapshot %pUb created\n", &snap->id);
	kfree(path);
	return 0;

out_put:
	snapshot_put(snap);
out_free_path:
	kfree(path);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Devices                                                                */
/* ---------------------------------------------------------------------- */

/* tracker_for_each_overlapping(): is @other's device in a snapshot? */
static int snapshot_holds_overlap(struct tracker *other, void *arg)
{
	lockdep_assert_held(&snapshots_lock);
	return READ_ONCE(other->snapdev) ? -EBUSY : 0;
}

/*
 * Does a snapshot other than @snap hold an image of the device @dev_id
 * (one whose tracker was detached and attached again)? Its image disk's
 * name would be taken. Called with snapshots_lock held.
 */
static bool snapshot_image_exists(dev_t dev_id)
{
	struct snapshot_device *sd;
	struct snapshot *snap;
	bool found = false;

	lockdep_assert_held(&snapshots_lock);
	list_for_each_entry(snap, &snapshots, link) {
		mutex_lock(&snap->lock);
		list_for_each_entry(sd, &snap->devices, link)
			if (sd->tracker->dev_id == dev_id && sd->image)
				found = true;
		mutex_unlock(&snap->lock);
	}
	return found;
}

static int snapshot_add_device(const uuid_t *id, struct tracker *tracker,
			       struct block_device *bdev)
{
	struct snapshot_device *sd;
	struct snapshot *snap;
	int ret = 0;

	lockdep_assert_held(&tracker->ctl_lock);
	sd = kzalloc(sizeof(*sd), GFP_KERNEL);
	if (!sd)
		return -ENOMEM;

	mutex_lock(&snapshots_lock);
	snap = snapshot_find(id);
	if (!snap) {
		ret = -ESRCH;
		goto out_unlock;
	}
	ret = snapshot_storage_cycle(snap, tracker->dev_id, tracker->disk_dev);
	if (ret) {
		pr_err("[%u:%u]: the difference storage of snapshot %pUb %s\n",
		       MAJOR(tracker->dev_id), MINOR(tracker->dev_id), &snap->id,
		       ret == -EBUSY ? "is on this device" :
		       "rests on this device or a device of a snapshot storing on it");
		goto out_unlock;
	}
	if (tracker->snapdev) {
		ret = tracker->snapdev->snapshot == snap ? -EALREADY : -EBUSY;
		goto out_unlock;
	}
	/*
	 * A partition and its whole disk (or two overlapping partitions) in
	 * snapshots: a write to both would be copied for one only.
	 */
	if (tracker_for_each_overlapping(tracker, snapshot_holds_overlap,
					 NULL)) {
		pr_err("[%u:%u] overlaps a device in a snapshot (a partition and its disk)\n",
		       MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		ret = -EBUSY;
		goto out_unlock;
	}
	if (snapshot_image_exists(tracker->dev_id)) {
		pr_err("[%u:%u] still has an image in another snapshot: destroy it first\n",
		       MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		ret = -EEXIST;
		goto out_unlock;
	}

	mutex_lock(&snap->lock);
	if (snap->state != SNAPSHOT_CREATED) {
		/* Taken (or being taken or destroyed): no more devices. */
		ret = -EBUSY;
	} else if (READ_ONCE(tracker->is_dead)) {
		ret = -ENODEV;
	} else if (blk_get_integrity(bdev->bd_disk)) {
		pr_err("[%u:%u] has data integrity: not supported\n",
		       MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		ret = -EPERM;
	} else if (compat_bdev_inline_crypto(bdev)) {
		/*
		 * Inline encryption (blk-crypto): a copy would be ciphertext
		 * read without the key of the writes, so the image would not
		 * show the data. As upstream, such devices are refused.
		 */
		pr_err("[%u:%u] has inline encryption: not supported\n",
		       MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		ret = -EPERM;
	} else {
		tracker_get(tracker);
		sd->snapshot = snap;
		sd->tracker = tracker;
		list_add_tail(&sd->link, &snap->devices);
		snap->count++;
		WRITE_ONCE(tracker->snapdev, sd);
		sd = NULL;
		pr_info("[%u:%u] added to snapshot %pUb\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id),
			&snap->id);
	}
	mutex_unlock(&snap->lock);
out_unlock:
	mutex_unlock(&snapshots_lock);
	kfree(sd);
	return ret;
}

static int snapshot_ctl_add(struct tracker *tracker, void __user *opt,
			    u32 optlen)
{
	struct blksnap_snapshotadd arg;
	struct compat_bdev ob;
	struct snapshot *snap;
	uuid_t id;
	int ret;

	if (optlen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, opt, sizeof(arg)))
		return -EFAULT;
	import_uuid(&id, arg.id.b);
	/* Look at what the storage rests on now (opens devices: no locks). */
	snap = snapshot_get_by_id(&id);
	if (!snap)
		return -ESRCH;
	ret = snapshot_storage_refresh(snap);
	snapshot_put(snap);
	if (ret)
		return ret;

	if (compat_bdev_open(&ob, tracker->dev_id))
		return -ENODEV;
	mutex_lock(&tracker->ctl_lock);
	ret = snapshot_add_device(&id, tracker, ob.bdev);
	mutex_unlock(&tracker->ctl_lock);
	compat_bdev_close(&ob);
	return ret;
}

static int snapshot_ctl_info(struct tracker *tracker, void __user *opt,
			     u32 optlen)
{
	struct blksnap_snapshotinfo arg = {};
	struct snapshot_device *sd;

	if (optlen < sizeof(arg))
		return -EINVAL;
	mutex_lock(&tracker->ctl_lock);
	sd = tracker->snapdev;
	if (sd && sd->diff_area)
		arg.error_code = READ_ONCE(sd->diff_area->error);
	if (sd && sd->image)
		strscpy(arg.image, sd->image->disk_name, sizeof(arg.image));
	mutex_unlock(&tracker->ctl_lock);
	if (copy_to_user(opt, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

int snapshot_device_ctl(struct tracker *tracker, unsigned int cmd,
			void __user *opt, u32 optlen)
{
	switch (cmd) {
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD:
		return snapshot_ctl_add(tracker, opt, optlen);
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO:
		return snapshot_ctl_info(tracker, opt, optlen);
	default:
		return -ENOTTY;
	}
}

void snapshot_forget_tracker(struct tracker *tracker)
{
	struct snapshot_device *sd;
	struct snapshot *snap;
	bool drop = false;

	mutex_lock(&tracker->ctl_lock);
	mutex_lock(&snapshots_lock);
	sd = tracker->snapdev;
	if (sd) {
		snap = sd->snapshot;
		mutex_lock(&snap->lock);
		if (snap->state == SNAPSHOT_CREATED) {
			list_del(&sd->link);
			snap->count--;
			WRITE_ONCE(tracker->snapdev, NULL);
			drop = true;
		}
		mutex_unlock(&snap->lock);
	}
	mutex_unlock(&snapshots_lock);
	/* Before the tracker stops seeing writes (see tracker_finish()). */
	if (!drop && sd && sd->diff_area)
		diff_area_set_corrupted(sd->diff_area, -ENODEV);
	mutex_unlock(&tracker->ctl_lock);

	if (drop) {
		pr_info("[%u:%u] gone: dropped from snapshot\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		kfree(sd);
		tracker_put(tracker);
	}
}

enum diff_area_cow snapshot_cow_bio(struct snapshot_device *sd,
				    struct bio *bio, sector_t sector,
				    sector_t count, bool may_block)
{
	/*
	 * Set before tracker->cow_on was set and cleared only after it was
	 * cleared, both with the tracker's write gate closed, at which our
	 * caller's write was admitted: stable here.
	 */
	struct diff_area *da = READ_ONCE(sd->diff_area);

	if (!da)
		return DIFF_AREA_PASS;
	return diff_area_cow_bio(da, bio, sector, count, may_block);
}

/* ---------------------------------------------------------------------- */
/* Take                                                                   */
/* ---------------------------------------------------------------------- */

static void snapshot_set_area(struct snapshot_device *sd,
			      struct diff_area *da)
{
	mutex_lock(&sd->tracker->ctl_lock);
	sd->diff_area = da;
	mutex_unlock(&sd->tracker->ctl_lock);
}

static void snapshot_set_image(struct snapshot_device *sd,
			       struct gendisk *disk)
{
	mutex_lock(&sd->tracker->ctl_lock);
	sd->image = disk;
	mutex_unlock(&sd->tracker->ctl_lock);
}

/*
 * Stops copy-on-write and frees the per-device state of @sd: image first
 * (no reader may see a chunk the original changed without a copy), then
 * copy-on-write. Called with snap->op_lock held. May sleep.
 */
static void snapshot_release_device(struct snapshot_device *sd, bool taken)
{
	struct diff_area *da;
	struct gendisk *disk;

	mutex_lock(&sd->tracker->ctl_lock);
	da = sd->diff_area;
	disk = sd->image;
	sd->image = NULL;
	mutex_unlock(&sd->tracker->ctl_lock);

	if (disk)
		snapimage_destroy(disk);
	if (!da)
		return;
	diff_area_stop(da);
	if (taken)
		tracker_release_snapshot(sd->tracker);
	diff_area_flush(da);
	snapshot_set_area(sd, NULL);
	diff_area_free(da);
}

/* tracker_for_each_overlapping() at take: any other device in a snapshot. */
static int snapshot_overlap_at_take(struct tracker *other, void *arg)
{
	return READ_ONCE(other->snapdev) ? -EBUSY : 0;
}

/*
 * The take of @snap's devices (the list is stable: state is TAKING). Called
 * with snap->op_lock held. May sleep.
 */
static int snapshot_take_devices(struct snapshot *snap)
{
	struct snapshot_device *sd;
	struct diff_area *da;
	struct cbt_map *cbt_map;
	struct gendisk *disk;
	unsigned int frozen = 0, taken = 0, n = 0;
	ktime_t start = ktime_get();
	int ret = 0;

	ret = snapshot_storage_refresh(snap);
	if (ret)
		return ret;
	mutex_lock(&snapshots_lock);
	list_for_each_entry(sd, &snap->devices, link) {
		ret = tracker_for_each_overlapping(sd->tracker,
						   snapshot_overlap_at_take,
						   NULL);
		if (ret)
			break;
	}
	if (!ret) {
		ret = snapshot_storage_cycle(snap, 0, 0);
		if (ret)
			pr_err("snapshot %pUb: its difference storage %s\n",
			       &snap->id, ret == -EBUSY ? "is on one of its devices" :
			       "rests on one of its devices, or on a device of a snapshot storing on them");
	}
	mutex_unlock(&snapshots_lock);
	if (ret)
		return ret;

	list_for_each_entry(sd, &snap->devices, link) {
		da = diff_area_new(sd->tracker->dev_id, snap->storage,
				   &snap->events);
		if (IS_ERR(da)) {
			ret = PTR_ERR(da);
			goto undo;
		}
		snapshot_set_area(sd, da);
	}

	/* File systems first: they sync and stop writing. */
	list_for_each_entry(sd, &snap->devices, link) {
		ret = compat_bdev_freeze(&sd->diff_area->orig);
		if (ret) {
			pr_err("[%u:%u] cannot be frozen: %d\n",
			       MAJOR(sd->tracker->dev_id),
			       MINOR(sd->tracker->dev_id), ret);
			break;
		}
		frozen++;
	}
	/*
	 * Then each device switches its CBT map and starts copy-on-write at
	 * one instant for all its writes (tracker_take_snapshot()).
	 */
	list_for_each_entry(sd, &snap->devices, link) {
		if (ret)
			break;
		ret = tracker_take_snapshot(sd->tracker, sd->diff_area->orig.bdev);
		if (!ret)
			taken++;
	}
	list_for_each_entry(sd, &snap->devices, link) {
		if (n++ == frozen)
			break;
		compat_bdev_thaw(&sd->diff_area->orig);
	}
	if (ret)
		goto undo;

	list_for_each_entry(sd, &snap->devices, link) {
		/* Image writes mark the map the tracker has at the take. */
		cbt_map = tracker_cbt_map_get(sd->tracker);
		disk = snapimage_create(sd->diff_area, cbt_map);
		cbt_map_put(cbt_map);
		if (IS_ERR(disk)) {
			ret = PTR_ERR(disk);
			goto undo;
		}
		snapshot_set_image(sd, disk);
	}
	/* A device that went away meanwhile is not copied any more. */
	list_for_each_entry(sd, &snap->devices, link)
		if (READ_ONCE(sd->tracker->is_dead))
			diff_area_set_corrupted(sd->diff_area, -ENODEV);
	pr_info("snapshot %pUb taken: %u device(s) in %lld us\n", &snap->id,
		snap->count, ktime_us_delta(ktime_get(), start));
	return 0;

undo:
	n = 0;
	list_for_each_entry(sd, &snap->devices, link)
		snapshot_release_device(sd, n++ < taken);
	return ret;
}

int snapshot_ioctl_take(struct blksnap_uuid __user *uarg)
{
	struct snapshot *snap;
	uuid_t id;
	int ret;

	ret = snapshot_get_uuid(uarg, &id);
	if (ret)
		return ret;
	snap = snapshot_get_by_id(&id);
	if (!snap)
		return -ESRCH;

	mutex_lock(&snap->op_lock);
	mutex_lock(&snap->lock);
	if (snap->state == SNAPSHOT_TAKEN)
		ret = -EALREADY;
	else if (snap->state != SNAPSHOT_CREATED)
		ret = -ESRCH;
	else if (!snap->count)
		ret = -ENODEV;
	else
		snap->state = SNAPSHOT_TAKING;
	mutex_unlock(&snap->lock);
	if (ret)
		goto out;

	ret = snapshot_take_devices(snap);

	mutex_lock(&snap->lock);
	snap->state = ret ? SNAPSHOT_CREATED : SNAPSHOT_TAKEN;
	mutex_unlock(&snap->lock);
out:
	mutex_unlock(&snap->op_lock);
	snapshot_put(snap);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Destroy                                                                */
/* ---------------------------------------------------------------------- */

/* Tears a snapshot down, after it left &snapshots. May sleep. */
static void snapshot_teardown(struct snapshot *snap)
{
	struct snapshot_device *sd, *tmp;
	struct tracker *tracker;
	LIST_HEAD(list);
	bool taken;

	mutex_lock(&snap->op_lock);
	mutex_lock(&snap->lock);
	taken = snap->state == SNAPSHOT_TAKEN;
	snap->state = SNAPSHOT_DESTROYED;
	list_splice_init(&snap->devices, &list);
	snap->count = 0;
	mutex_unlock(&snap->lock);

	event_queue_close(&snap->events);

	list_for_each_entry_safe(sd, tmp, &list, link) {
		tracker = sd->tracker;
		snapshot_release_device(sd, taken);
		mutex_lock(&tracker->ctl_lock);
		mutex_lock(&snapshots_lock);
		WRITE_ONCE(tracker->snapdev, NULL);
		mutex_unlock(&snapshots_lock);
		mutex_unlock(&tracker->ctl_lock);
		kfree(sd);
		tracker_put(tracker);
	}
	mutex_unlock(&snap->op_lock);
	pr_info("snapshot %pUb destroyed\n", &snap->id);
}

int snapshot_ioctl_destroy(struct blksnap_uuid __user *uarg)
{
	struct snapshot *snap;
	uuid_t id;
	int ret;

	ret = snapshot_get_uuid(uarg, &id);
	if (ret)
		return ret;

	mutex_lock(&snapshots_lock);
	snap = snapshot_find(&id);
	if (snap)
		list_del_init(&snap->link);
	mutex_unlock(&snapshots_lock);
	if (!snap)
		return -ENODEV;

	snapshot_teardown(snap);
	snapshot_put(snap);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Collect, wait for events                                               */
/* ---------------------------------------------------------------------- */

int snapshot_ioctl_collect(struct blksnap_snapshot_collect __user *uarg)
{
	struct blksnap_snapshot_collect arg;
	struct blksnap_uuid *ids = NULL;
	struct snapshot *snap;
	unsigned int total = 0, n = 0;
	int ret = 0;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;

	mutex_lock(&snapshots_lock);
	list_for_each_entry(snap, &snapshots, link)
		total++;
	if (arg.ids && arg.count && total) {
		ids = kcalloc(min(arg.count, total), sizeof(*ids), GFP_KERNEL);
		if (!ids) {
			mutex_unlock(&snapshots_lock);
			return -ENOMEM;
		}
		list_for_each_entry(snap, &snapshots, link) {
			if (n == arg.count)
				break;
			export_uuid(ids[n++].b, &snap->id);
		}
	}
	mutex_unlock(&snapshots_lock);

	if (!arg.ids) {
		arg.count = total;
	} else {
		if (n && copy_to_user(u64_to_user_ptr(arg.ids), ids,
				      n * sizeof(*ids)))
			ret = -EFAULT;
		else if (arg.count < total)
			ret = -ENODATA;
		arg.count = n;
	}
	kfree(ids);
	if (ret != -EFAULT &&
	    copy_to_user(&uarg->count, &arg.count, sizeof(arg.count)))
		ret = -EFAULT;
	return ret;
}

int snapshot_ioctl_wait_event(struct blksnap_snapshot_event __user *uarg)
{
	struct snapshot *snap;
	struct event *ev;
	u32 timeout_ms;
	uuid_t id;
	int ret;

	ret = snapshot_get_uuid(&uarg->id, &id);
	if (ret)
		return ret;
	if (get_user(timeout_ms, &uarg->timeout_ms))
		return -EFAULT;

	snap = snapshot_get_by_id(&id);
	if (!snap)
		return -ESRCH;
	ev = event_wait(&snap->events, timeout_ms);
	snapshot_put(snap);
	if (IS_ERR(ev))
		return PTR_ERR(ev);

	if (put_user((u32)ev->code, &uarg->code) ||
	    put_user((s64)ktime_to_ns(ev->time), &uarg->time_label) ||
	    copy_to_user(uarg->data, ev->data, ev->data_size))
		ret = -EFAULT;
	kfree(ev);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Init and exit                                                          */
/* ---------------------------------------------------------------------- */

int snapshot_init(void)
{
	int ret;

	snapshot_params_check();
	ret = diff_storage_wq_init();
	if (ret)
		return ret;
	ret = diff_area_wq_init();
	if (ret)
		goto fail_storage_wq;
	return 0;

fail_storage_wq:
	diff_storage_wq_done();
	return ret;
}

void snapshot_done(void)
{
	struct snapshot *snap;

	for (;;) {
		mutex_lock(&snapshots_lock);
		snap = list_first_entry_or_null(&snapshots, struct snapshot,
						link);
		if (snap)
			list_del_init(&snap->link);
		mutex_unlock(&snapshots_lock);
		if (!snap)
			break;
		pr_info("snapshot %pUb destroyed at unload\n", &snap->id);
		snapshot_teardown(snap);
		snapshot_put(snap);
	}
	diff_area_wq_done();
	diff_storage_wq_done();
}
