/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshots: the control device's snapshot requests and the per-device
 * snapshotadd/snapshotinfo commands. See docs/kernel-abi.md, "Snapshots".
 *
 * Lock order (outermost first): snapshot.op_lock, tracker->ctl_lock,
 * snapshots_lock, snapshot.lock. tracker_take_snapshot() and
 * tracker_release_snapshot() are called with only op_lock held (they close
 * the tracker's write gate, which waits for writes in flight).
 */
#ifndef __BLKSNAP_SNAPSHOT_H
#define __BLKSNAP_SNAPSHOT_H

#include <linux/uuid.h>
#include <blksnap.h>

#include "diff_area.h"

struct tracker;
struct bio;
struct snapshot_device;

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
 * The snapshot's per-device commands (filter ctl SNAPSHOTADD and
 * SNAPSHOTINFO) on @tracker's device; @opt and @optlen are the command's
 * payload. May sleep. Return: 0 or -errno (see docs/kernel-abi.md).
 */
int snapshot_device_ctl(struct tracker *tracker, unsigned int cmd,
			void __user *opt, u32 optlen);

/*
 * Called by the tracker before it is detached (device removed, or the
 * detach request) while a snapshot holds it: a snapshot not taken yet
 * drops the device; a taken one marks the device's image corrupted
 * (-ENODEV) and keeps it until destroyed. May sleep.
 */
void snapshot_forget_tracker(struct tracker *tracker);

/*
 * Copy-on-write for a write of the tracker's device, called by the I/O
 * path while tracker->cow_on, with @snapdev = tracker->snapdev: the write
 * changes sectors [@sector, @sector + @count) of the device. @may_block:
 * the submitter may wait (for room in the queue, for memory). The CBT
 * maps are marked already. Return: see enum diff_area_cow.
 */
enum diff_area_cow snapshot_cow_bio(struct snapshot_device *snapdev,
				    struct bio *bio, sector_t sector,
				    sector_t count, bool may_block);

#endif /* __BLKSNAP_SNAPSHOT_H */
