/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshots: the control device's snapshot requests and the per-device
 * snapshotadd/snapshotinfo commands.
 *
 * STUB (foundation): every request answers -EOPNOTSUPP until the snapshot
 * work lands. The signatures are the boundary between main.c/tracker.c and
 * the snapshot code; keep them, or change both sides together.
 */
#ifndef __BLKSNAP_SNAPSHOT_H
#define __BLKSNAP_SNAPSHOT_H

#include <linux/uuid.h>
#include <blksnap.h>

struct tracker;

int snapshot_init(void);
void snapshot_done(void);

/* Control device requests; the argument is the ioctl's user pointer. */
int snapshot_ioctl_create(struct blksnap_snapshot_create __user *uarg);
int snapshot_ioctl_destroy(struct blksnap_uuid __user *uarg);
int snapshot_ioctl_take(struct blksnap_uuid __user *uarg);
int snapshot_ioctl_collect(struct blksnap_snapshot_collect __user *uarg);
int snapshot_ioctl_wait_event(struct blksnap_snapshot_event __user *uarg);

/* Per-device commands, called by the tracker with tracker->ctl_lock held. */
int snapshot_add_device(const uuid_t *id, struct tracker *tracker);
int snapshot_device_info(struct tracker *tracker,
			 struct blksnap_snapshotinfo *info);

/*
 * Called by the tracker when its device goes away or it is detached while
 * a snapshot holds it: the snapshot must drop the tracker.
 */
void snapshot_forget_tracker(struct tracker *tracker);

#endif /* __BLKSNAP_SNAPSHOT_H */
