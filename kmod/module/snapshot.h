/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshots: the control device's snapshot requests and the per-device
 * snapshotadd/snapshotinfo commands. See docs/kernel-abi.md, "Snapshots".
 *
 * Lock order (outermost first): snapshot.op_lock, tracker->ctl_lock,
 * snapshots_lock, snapshot.lock. tracker_take_snapshot() and
 * tracker_release_snapshot() are called with only op_lock held.
 */
#ifndef __BLKSNAP_SNAPSHOT_H
#define __BLKSNAP_SNAPSHOT_H

#include <linux/uuid.h>
#include <blksnap.h>

struct tracker;
struct bio;
struct bvec_iter;
struct block_device;

int snapshot_init(void);
/* Module exit: destroys every snapshot left. May sleep. */
void snapshot_done(void);

/* Control device requests; the argument is the ioctl's user pointer. */
int snapshot_ioctl_create(struct blksnap_snapshot_create __user *uarg);
int snapshot_ioctl_destroy(struct blksnap_uuid __user *uarg);
int snapshot_ioctl_take(struct blksnap_uuid __user *uarg);
int snapshot_ioctl_collect(struct blksnap_snapshot_collect __user *uarg);
int snapshot_ioctl_wait_event(struct blksnap_snapshot_event __user *uarg);

/*
 * Per-device commands, called by the tracker with tracker->ctl_lock held;
 * @bdev is the tracked device, opened by the caller.
 */
int snapshot_add_device(const uuid_t *id, struct tracker *tracker,
			struct block_device *bdev);
int snapshot_device_info(struct tracker *tracker,
			 struct blksnap_snapshotinfo *info);

/*
 * Called by the tracker (without tracker->ctl_lock) when its device goes
 * away or it is detached while a snapshot holds it. A snapshot not taken yet
 * drops the device; a taken one marks the device's image corrupted
 * (-ENODEV) and keeps it until destroyed. May sleep.
 */
void snapshot_forget_tracker(struct tracker *tracker);

/* Copy-on-write hook of the I/O path: see tracker.h for the contract. */
bool snapshot_cow_bio(struct tracker *tracker, struct bio *bio,
		      struct bvec_iter *iter);

#endif /* __BLKSNAP_SNAPSHOT_H */
