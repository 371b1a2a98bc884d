/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Trackers: one per tracked block device (whole disk or partition). A
 * tracker sees every write bio that touches its device's sectors, whether
 * submitted to the device itself, to its whole disk, or (for a whole disk)
 * to one of its partitions, and records it in its CBT map. The trackers of
 * tracker admits every write it sees at its write gate (write_gate.h),
 * which makes its CBT switch one instant for every write.
 */
#ifndef __BLKSNAP_TRACKER_H
#define __BLKSNAP_TRACKER_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/rculist.h>
#include <linux/workqueue.h>
#include <linux/blkdev.h>
#include "filter.h"
#include "write_gate.h"

struct cbt_map;
struct tracked_disk;
struct snapshot_device;

/**
 * struct tracker - The tracker of one block device.
 * @hash_node: Entry in the tracker table (tracker.c), looked up by device
 *	number under RCU; changed only with tracker_mutex held.
 * @disk_link: Entry in its tracked disk's list of trackers, read by the I/O
 *	path under RCU; changed only with tracker_mutex held.
 * @kref: References: the tracker table holds one while attached; each user
 *	(ioctl, snapshot, a write being copied) holds its own.
 * @dev_id: The device number. Immutable.
 * @disk: The device's disk, as an identity only: never dereferenced. The
 *	tracker holds no reference on the device, its disk or its driver
 *	(a reference would keep disk_release() for after the driver's module
 *	is gone); whoever needs the device opens it by @dev_id, which pins
 *	the driver and fails once the device is gone. The del_gendisk() hook
 *	unlinks the tracker before the disk can be freed.
 * @disk_dev: The device number of the whole disk. Immutable.
 * @start_sect: The device's first sector on its disk (0 for a whole disk).
 *	Immutable (a partition's start cannot move).
 * @tdisk: The tracked disk (a reference). Immutable.
 * @gate: Every write that touches the device's sectors is admitted here
 *	and counted until it completes; a switch closes it (tracker_switch()).
 *	Its domain is @tdisk.
 * @is_dead: Set once, when the tracker is being detached (the device went
 *	away or was detached); written under tracker_mutex, read locklessly.
 * @ctl_lock: Serialises the snapshot's per-device commands and guards
 *	@snapdev's contents for the snapshot code. Never held across a copy
 *	from or to user memory (device removal takes it). Not held on the I/O
 *	path.
 * @cbt_map: The CBT map, RCU-protected. Replaced (resize, corruption) and
 *	switched only with @gate closed, so a write admitted at @gate marks
 *	one map with one number; the old map is put after a grace period.
 *	Use tracker_cbt_map_get() outside the I/O path.
 * @snapdev: The device's membership of a snapshot, owned by the snapshot
 *	code (snapshot.c), or NULL. Written with snapshots_lock and @ctl_lock
 *	held. The I/O path reads it only while @cow_on.
 * @cow_on: Writes go through copy-on-write for @snapdev. Set and cleared
 *	only with @gate closed: every write admitted at @gate sees one value
 *	from admission to completion.
 * @release_work: Frees the tracker in process context, after an RCU grace
 *	period (the I/O path may still be reading it) and after the writes it
 *	admitted completed (their completion uses @gate).
 */
struct tracker {
	struct hlist_node hash_node;
	struct list_head disk_link;
	struct kref kref;
	dev_t dev_id;
	const struct gendisk *disk;
	dev_t disk_dev;
	sector_t start_sect;
	struct tracked_disk *tdisk;
	struct write_gate gate;
	bool is_dead;

	struct mutex ctl_lock;
	struct cbt_map __rcu *cbt_map;
	struct snapshot_device *snapdev;
	bool cow_on;

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

/*
 * The attached tracker of a device, with a reference (tracker_put() it),
 * or NULL. Any context.
 */
struct tracker *tracker_get_by_dev(dev_t dev_id);

/* Take a reference on the tracker's current CBT map (cbt_map_put() it). */
struct cbt_map *tracker_cbt_map_get(struct tracker *tracker);

/*
 * Attach a tracker to the device @dev_id; detach @tracker. See
 * IOCTL_BLKSNAP_FILTER_ATTACH and _DETACH in docs/kernel-abi.md for the
 * errors. May sleep.
 */
int tracker_attach(dev_t dev_id);
int tracker_detach(struct tracker *tracker);

/**
 * tracker_take_snapshot() - The tracker's part of a snapshot take.
 * @tracker: The tracker.
 * @bdev: The tracked device, opened by the caller.
 *
 * The CBT switch with copy-on-write turned on at the same instant (see
 * tracker_switch() in tracker.c): waits for every write in flight on the
 * device's disk, including writes held by blk-throttle or in a stacked
 * device below, holding new writes back meanwhile. The caller set up
 * @tracker->snapdev first and may freeze the file system around the call.
 * May sleep; a fatal signal aborts the wait.
 *
 * Return: 0; -ENODEV (the device is gone); -ENOMEM (the map could not be
 * re-created); -EINTR. On an error nothing changed.
 */
int tracker_take_snapshot(struct tracker *tracker, struct block_device *bdev);

/**
 * tracker_release_snapshot() - Stop copy-on-write for the tracker.
 * @tracker: The tracker.
 *
 * When it returns, no write of the device is in snapshot_cow_bio() and
 * none will enter it. May sleep (waits for the writes in flight).
 */
void tracker_release_snapshot(struct tracker *tracker);

/*
 * The CBT switch of a take without a snapshot, for
 * IOCTL_BLKSNAP_TEST_CBT_SWITCH. Return: 0, -ENODEV, -ENOMEM or -EINTR.
 * May sleep.
 */
int tracker_test_switch(struct tracker *tracker);

/*
 * Calls @fn for every other tracker on @tracker's disk whose sectors
 * overlap @tracker's (its whole disk, its partitions, or overlapping
 * partitions), under rcu_read_lock(): @fn may not sleep. Stops at, and
 * returns, the first nonzero result.
 */
int tracker_for_each_overlapping(struct tracker *tracker,
				 int (*fn)(struct tracker *other, void *arg),
				 void *arg);

/* What the bio filter calls (main.c registers it). */
extern const struct filter_ops tracker_filter_ops;

int tracker_init(void);
void tracker_done(void);

#endif /* __BLKSNAP_TRACKER_H */
