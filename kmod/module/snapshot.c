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
 * @events: The event queue.
 * @op_lock: Serialises take and destroy. Outermost lock (see snapshot.h).
 * @lock: Guards @trackers, @count and @state.
 * @trackers: The devices (tracker->link); each holds a tracker reference,
 *	and tracker->snapshot_data points back here (under tracker->ctl_lock).
 * @count: Entries in @trackers.
 * @state: enum snapshot_state.
 */
struct snapshot {
	struct list_head link;
	struct kref kref;
	uuid_t id;
	struct diff_storage *storage;
	struct event_queue events;

	struct mutex op_lock;

	struct mutex lock;
	struct list_head trackers;
	unsigned int count;
	int state;
};

/* Guards &snapshots. */
static DEFINE_MUTEX(snapshots_lock);
static LIST_HEAD(snapshots);

static void snapshot_release(struct kref *kref)
{
	struct snapshot *snap = container_of(kref, struct snapshot, kref);

	WARN_ON(!list_empty(&snap->trackers));
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
	INIT_LIST_HEAD(&snap->trackers);
	snap->state = SNAPSHOT_CREATED;

	snap->storage = diff_storage_open(path, arg.diff_storage_limit_sect,
					  &snap->events);
	if (IS_ERR(snap->storage)) {
		ret = PTR_ERR(snap->storage);
		snap->storage = NULL;
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

int snapshot_add_device(const uuid_t *id, struct tracker *tracker,
			struct block_device *bdev)
{
	struct snapshot *snap, *cur;
	int ret = 0;

	lockdep_assert_held(&tracker->ctl_lock);

	mutex_lock(&snapshots_lock);
	snap = snapshot_find(id);
	if (!snap) {
		mutex_unlock(&snapshots_lock);
		return -ESRCH;
	}
	cur = tracker->snapshot_data;
	if (cur) {
		mutex_unlock(&snapshots_lock);
		return cur == snap ? -EALREADY : -EBUSY;
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
	} else if (diff_storage_on_bdev(snap->storage, bdev)) {
		pr_err("[%u:%u] holds the difference storage of snapshot %pUb\n",
		       MAJOR(tracker->dev_id), MINOR(tracker->dev_id),
		       &snap->id);
		ret = -EBUSY;
	} else {
		tracker_get(tracker);
		list_add_tail(&tracker->link, &snap->trackers);
		snap->count++;
		tracker->snapshot_data = snap;
		pr_info("[%u:%u] added to snapshot %pUb\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id),
			&snap->id);
	}
	mutex_unlock(&snap->lock);
	mutex_unlock(&snapshots_lock);
	return ret;
}

int snapshot_device_info(struct tracker *tracker,
			 struct blksnap_snapshotinfo *info)
{
	lockdep_assert_held(&tracker->ctl_lock);

	memset(info, 0, sizeof(*info));
	if (tracker->diff_area)
		info->error_code = READ_ONCE(tracker->diff_area->error);
	if (tracker->snap_disk)
		strscpy(info->image, tracker->snap_disk->disk_name,
			sizeof(info->image));
	return 0;
}

void snapshot_forget_tracker(struct tracker *tracker)
{
	struct snapshot *snap;
	bool drop = false;

	mutex_lock(&tracker->ctl_lock);
	snap = tracker->snapshot_data;
	if (snap) {
		mutex_lock(&snap->lock);
		if (snap->state == SNAPSHOT_CREATED) {
			list_del_init(&tracker->link);
			snap->count--;
			tracker->snapshot_data = NULL;
			drop = true;
		}
		mutex_unlock(&snap->lock);
	}
	if (tracker->diff_area)
		diff_area_set_corrupted(tracker->diff_area, -ENODEV);
	mutex_unlock(&tracker->ctl_lock);

	if (drop) {
		pr_info("[%u:%u] gone: dropped from snapshot\n",
			MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
		tracker_put(tracker);
	}
}

bool snapshot_cow_bio(struct tracker *tracker, struct bio *bio,
		      struct bvec_iter *iter)
{
	/*
	 * Set before snapshot_is_taken was set and cleared only after it was
	 * cleared, both under the write side of the submit lock, whose read
	 * side our caller holds: stable here.
	 */
	struct diff_area *da = READ_ONCE(tracker->diff_area);

	if (!da)
		return false;
	return diff_area_cow_bio(da, bio, iter);
}

/* ---------------------------------------------------------------------- */
/* Take                                                                   */
/* ---------------------------------------------------------------------- */

static void snapshot_set_area(struct tracker *tracker, struct diff_area *da)
{
	mutex_lock(&tracker->ctl_lock);
	tracker->diff_area = da;
	mutex_unlock(&tracker->ctl_lock);
}

static void snapshot_set_disk(struct tracker *tracker, struct gendisk *disk)
{
	mutex_lock(&tracker->ctl_lock);
	tracker->snap_disk = disk;
	mutex_unlock(&tracker->ctl_lock);
}

/*
 * Stops copy-on-write and frees the per-device state of @tracker: image
 * first (no reader may see a chunk the original changed without a copy),
 * then copy-on-write. Called with snap->op_lock held. May sleep.
 */
static void snapshot_release_device(struct tracker *tracker, bool taken)
{
	struct diff_area *da;
	struct gendisk *disk;

	mutex_lock(&tracker->ctl_lock);
	da = tracker->diff_area;
	disk = tracker->snap_disk;
	tracker->snap_disk = NULL;
	mutex_unlock(&tracker->ctl_lock);

	if (disk)
		snapimage_destroy(disk);
	if (!da)
		return;
	diff_area_stop(da);
	if (taken)
		tracker_release_snapshot(tracker);
	diff_area_flush(da);
	snapshot_set_area(tracker, NULL);
	diff_area_free(da);
}

static int snapshot_take_devices(struct snapshot *snap,
				 struct tracker **trackers, unsigned int n)
{
	struct diff_area *da;
	struct cbt_map *cbt_map;
	struct gendisk *disk;
	unsigned int i, frozen = 0, taken = 0;
	ktime_t start = ktime_get();
	int ret = 0;

	for (i = 0; i < n; i++) {
		da = diff_area_new(trackers[i], snap->storage, &snap->events);
		if (IS_ERR(da)) {
			ret = PTR_ERR(da);
			goto undo;
		}
		snapshot_set_area(trackers[i], da);
	}

	/* File systems first: they sync and stop writing. */
	for (frozen = 0; frozen < n; frozen++) {
		ret = bdev_freeze(trackers[frozen]->diff_area->orig.bdev);
		if (ret) {
			pr_err("[%u:%u] cannot be frozen: %d\n",
			       MAJOR(trackers[frozen]->dev_id),
			       MINOR(trackers[frozen]->dev_id), ret);
			break;
		}
	}
	/*
	 * Then each device switches its CBT map and starts copy-on-write
	 * with its queue frozen and writes blocked (tracker_take_snapshot()).
	 */
	for (taken = 0; !ret && taken < n; taken++) {
		ret = tracker_take_snapshot(trackers[taken],
					    trackers[taken]->diff_area->orig.bdev);
		if (ret)
			break;
	}
	for (i = 0; i < frozen; i++)
		bdev_thaw(trackers[i]->diff_area->orig.bdev);
	if (ret)
		goto undo;

	for (i = 0; i < n; i++) {
		cbt_map = tracker_cbt_map_get(trackers[i]);
		disk = snapimage_create(trackers[i]->diff_area, cbt_map);
		cbt_map_put(cbt_map);
		if (IS_ERR(disk)) {
			ret = PTR_ERR(disk);
			goto undo;
		}
		snapshot_set_disk(trackers[i], disk);
	}
	/* A device that went away meanwhile is not copied any more. */
	for (i = 0; i < n; i++)
		if (READ_ONCE(trackers[i]->is_dead))
			diff_area_set_corrupted(trackers[i]->diff_area,
						-ENODEV);
	pr_info("snapshot %pUb taken: %u device(s) in %lld us\n", &snap->id,
		n, ktime_us_delta(ktime_get(), start));
	return 0;

undo:
	for (i = 0; i < n; i++)
		snapshot_release_device(trackers[i], i < taken);
	return ret;
}

int snapshot_ioctl_take(struct blksnap_uuid __user *uarg)
{
	struct tracker **trackers = NULL, *tracker;
	struct snapshot *snap;
	unsigned int n = 0, i;
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
	if (snap->state == SNAPSHOT_TAKEN) {
		ret = -EALREADY;
	} else if (snap->state != SNAPSHOT_CREATED) {
		ret = -ESRCH;
	} else if (!snap->count) {
		ret = -ENODEV;
	} else {
		trackers = kcalloc(snap->count, sizeof(*trackers), GFP_KERNEL);
		if (!trackers) {
			ret = -ENOMEM;
		} else {
			list_for_each_entry(tracker, &snap->trackers, link) {
				tracker_get(tracker);
				trackers[n++] = tracker;
			}
			snap->state = SNAPSHOT_TAKING;
		}
	}
	mutex_unlock(&snap->lock);
	if (ret)
		goto out;

	ret = snapshot_take_devices(snap, trackers, n);

	mutex_lock(&snap->lock);
	snap->state = ret ? SNAPSHOT_CREATED : SNAPSHOT_TAKEN;
	mutex_unlock(&snap->lock);
	for (i = 0; i < n; i++)
		tracker_put(trackers[i]);
	kfree(trackers);
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
	struct tracker *tracker, *tmp;
	LIST_HEAD(list);
	bool taken;

	mutex_lock(&snap->op_lock);
	mutex_lock(&snap->lock);
	taken = snap->state == SNAPSHOT_TAKEN;
	snap->state = SNAPSHOT_DESTROYED;
	list_splice_init(&snap->trackers, &list);
	snap->count = 0;
	mutex_unlock(&snap->lock);

	event_queue_close(&snap->events);

	list_for_each_entry_safe(tracker, tmp, &list, link) {
		snapshot_release_device(tracker, taken);
		mutex_lock(&tracker->ctl_lock);
		list_del_init(&tracker->link);
		tracker->snapshot_data = NULL;
		mutex_unlock(&tracker->ctl_lock);
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
