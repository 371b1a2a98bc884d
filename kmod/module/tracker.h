/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trackers: one per tracked block device (whole disk or partition). A
 * tracker sees every write bio of its device (filter.c hands them over) and
 * records it in its CBT map.
 */
#ifndef __BLKSNAP_TRACKER_H
#define __BLKSNAP_TRACKER_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/percpu-rwsem.h>
#include <linux/lockdep.h>
#include <linux/rculist.h>
#include <linux/workqueue.h>
#include <linux/blkdev.h>
#include <blksnap.h>

struct cbt_map;
struct diff_area;
struct gendisk;

/**
 * struct tracker - The tracker of one block device.
 * @hash_node: Entry in the tracker table (tracker.c), looked up under RCU
 *	on the I/O path; changed only with tracker_mutex held.
 * @link: Free for the snapshot code (its list of devices); the tracker
 *	code never touches it after initialising it.
 * @kref: References: the tracker table holds one while attached; each user
 *	(ioctl, bio in flight, snapshot) holds its own (tracker_get/put).
 * @dev_id: The device number. Immutable.
 * @disk: The device's disk, as an identity only: never dereferenced. The
 *	tracker holds no reference on the device, its disk or its driver
 *	(a reference would keep disk_release() for after the driver's module
 *	is gone); whoever needs the device opens it by @dev_id, which pins
 *	the driver and fails once the device is gone. The del_gendisk() hook
 *	unlinks the tracker before the disk can be freed, so @disk is not
 *	compared with a new disk at the same address.
 * @is_dead: Set once, when the device went away or the tracker was
 *	detached; written under tracker_mutex, read locklessly.
 * @ctl_lock: Serialises the per-device snapshot commands (snapshotadd,
 *	snapshotinfo) and guards @diff_area and @snap_disk for the snapshot
 *	code. Never held across a copy from or to user memory: device removal
 *	takes it. Not held on the I/O path.
 * @submit_lock: Read side held by the I/O path while it marks the map and
 *	calls snapshot_cow_bio() and until the bio entered the block layer;
 *	write side held while @cbt_map is replaced or switched and while
 *	@snapshot_is_taken changes, so a write is either wholly before or
 *	wholly after a switch.
 * @submit_key: Lockdep class of @submit_lock, one per tracker.
 * @cbt_map: The CBT map, RCU-protected. Replaced (resize, corruption)
 *	only with @submit_lock held for writing; the old map is put after a
 *	grace period. Use tracker_cbt_map_get() outside the I/O path.
 * @snapshot_is_taken: Nonzero while a taken snapshot holds the device: the
 *	I/O path then calls snapshot_cow_bio() for each write.
 * @diff_area: Owned by the snapshot code (guarded by @ctl_lock).
 * @snap_disk: Owned by the snapshot code (guarded by @ctl_lock).
 * @snapshot_data: Free for the snapshot code.
 * @release_work: Frees the tracker in process context, after an RCU grace
 *	period: the I/O path may still be reading it (tracker_lookup_rcu()).
 */
struct tracker {
	struct hlist_node hash_node;
	struct list_head link;
	struct kref kref;
	dev_t dev_id;
	const struct gendisk *disk;
	bool is_dead;

	struct mutex ctl_lock;
	struct percpu_rw_semaphore submit_lock;
	struct lock_class_key submit_key;
	struct cbt_map __rcu *cbt_map;
	atomic_t snapshot_is_taken;

	struct diff_area *diff_area;
	struct gendisk *snap_disk;
	void *snapshot_data;

	struct rcu_work release_work;
};

void tracker_release(struct kref *kref);

static inline void tracker_get(struct tracker *tracker)
{
	kref_get(&tracker->kref);
}

static inline void tracker_put(struct tracker *tracker)
{
	if (tracker)
		kref_put(&tracker->kref, tracker_release);
}

/**
 * tracker_get_by_dev() - Find the attached tracker of a device.
 * @dev_id: Device number.
 *
 * Return: the tracker with a reference (tracker_put() it), or NULL.
 * May sleep.
 */
struct tracker *tracker_get_by_dev(dev_t dev_id);

/* Take a reference on the tracker's current CBT map (cbt_map_put() it). */
struct cbt_map *tracker_cbt_map_get(struct tracker *tracker);

/**
 * tracker_take_snapshot() - The tracker's part of a snapshot take.
 * @tracker: The tracker.
 * @bdev: The tracked device, opened by the caller.
 *
 * Blocks new writes of the device in the I/O path (write side of
 * @submit_lock), freezes the device's queue (waits for writes in flight),
 * makes a new CBT map if the device was resized or the map is corrupted,
 * performs the CBT switch and sets @snapshot_is_taken, then unfreezes.
 * The caller sets up @diff_area first, and may freeze the file system
 * (bdev_freeze) around the call; it must NOT hold the queue frozen, nor
 * hold @ctl_lock (not needed). May sleep.
 *
 * Return: 0, or -ENOMEM (the map could not be re-created; nothing changed).
 */
int tracker_take_snapshot(struct tracker *tracker, struct block_device *bdev);

/**
 * tracker_release_snapshot() - Stop copy-on-write for the tracker.
 * @tracker: The tracker.
 *
 * Clears @snapshot_is_taken with @submit_lock held for writing: when it
 * returns, no bio of this device is inside snapshot_cow_bio() any more.
 * Must not be called from snapshot_cow_bio(). May sleep.
 */
void tracker_release_snapshot(struct tracker *tracker);

/**
 * snapshot_cow_bio() - Copy-on-write hook, implemented by the snapshot code.
 * @tracker: The tracker of the bio's device (a reference is held).
 * @bio: A write bio (op_is_write, non-empty) about to be submitted.
 * @iter: The bio's range, sectors relative to the tracked device (for a
 *	partition: relative to the partition).
 *
 * Called on the I/O path, only while @snapshot_is_taken, with
 * @tracker->submit_lock held for reading, in the submitter's context (may
 * sleep only if the submitter may; GFP_NOIO). The CBT map is already
 * marked.
 *
 * Return: true if it took ownership of @bio (it will submit or end it
 * itself, with filter_submit_bio_noacct()); false to let the tracker
 * submit it now.
 */
bool snapshot_cow_bio(struct tracker *tracker, struct bio *bio,
		      struct bvec_iter *iter);

/* I/O path, called by filter.c. */
bool tracker_bio_is_tracked(struct bio *bio);
void tracker_submit_bio(struct bio *bio);

/* Control device requests (main.c); @uarg is the ioctl's user pointer. */
int tracker_ioctl_attach(struct blksnap_filter_request __user *uarg);
int tracker_ioctl_detach(struct blksnap_filter_request __user *uarg);
int tracker_ioctl_ctl(struct blksnap_filter_request __user *uarg);
int tracker_ioctl_test_cbt_switch(struct blksnap_filter_request __user *uarg);
/* A BLKFILTER request on a device fd (ioctl_hook.c's handler). */
int tracker_ioctl_blkfilter(dev_t dev_id, unsigned int cmd, void __user *argp);

/* Device removal (filter.c's del_gendisk hook). May sleep. */
void tracker_disk_removed(struct gendisk *disk);

int tracker_init(void);
void tracker_done(void);

#endif /* __BLKSNAP_TRACKER_H */
