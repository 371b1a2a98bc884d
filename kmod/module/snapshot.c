// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshots. STUB (foundation): see snapshot.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-snapshot: " fmt

#include <linux/errno.h>
#include <linux/string.h>
#include "snapshot.h"

int snapshot_init(void)
{
	return 0;
}

void snapshot_done(void)
{
}

int snapshot_ioctl_create(struct blksnap_snapshot_create __user *uarg)
{
	return -EOPNOTSUPP;
}

int snapshot_ioctl_destroy(struct blksnap_uuid __user *uarg)
{
	return -EOPNOTSUPP;
}

int snapshot_ioctl_take(struct blksnap_uuid __user *uarg)
{
	return -EOPNOTSUPP;
}

int snapshot_ioctl_collect(struct blksnap_snapshot_collect __user *uarg)
{
	return -EOPNOTSUPP;
}

int snapshot_ioctl_wait_event(struct blksnap_snapshot_event __user *uarg)
{
	return -EOPNOTSUPP;
}

int snapshot_add_device(const uuid_t *id, struct tracker *tracker)
{
	return -EOPNOTSUPP;
}

int snapshot_device_info(struct tracker *tracker,
			 struct blksnap_snapshotinfo *info)
{
	memset(info, 0, sizeof(*info));
	return 0;
}

void snapshot_forget_tracker(struct tracker *tracker)
{
}
