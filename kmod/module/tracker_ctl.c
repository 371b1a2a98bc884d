// SPDX-License-Identifier: GPL-2.0
/*
 * The tracker requests: the control device's IOCTL_BLKSNAP_FILTER_ATTACH,
 * _DETACH, _CTL and IOCTL_BLKSNAP_TEST_CBT_SWITCH, and the same three
 * requests as BLKFILTER_* on a device fd (ioctl_hook.c). Each copies and
 * checks its request, finds the tracker, and calls the tracker (attach, detach,
 * switch) or the snapshot code (snapshotadd, snapshotinfo); the CBT
 * commands (cbtinfo, cbtmap, cbtdirty) are here.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-tracker: " fmt

#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include "tracker_ctl.h"
#include "tracker.h"
#include "cbt_map.h"
#include "snapshot.h"

/*
 * A tracker request once copied in and checked, from either transport: the
 * control device names the device by number, a device fd is the device.
 */
struct tracker_request {
	dev_t dev_id;
	unsigned int cmd;	/* BLKFILTER_CTL only */
	void __user *opt;	/* BLKFILTER_CTL only */
	u32 optlen;		/* BLKFILTER_CTL only */
};

static bool request_name_ok(const __u8 *name)
{
	return !strncmp((const char *)name, BLKSNAP_FILTER_NAME,
			BLKFILTER_NAME_LENGTH);
}

/*
 * The prologue of every control-device request: CAP_SYS_ADMIN, the request
 * copied in once, the filter name and the device number checked.
 * Return: 0, -EPERM, -EFAULT or -EINVAL.
 */
static int request_get(struct blksnap_filter_request __user *uarg,
		       struct tracker_request *req)
{
	struct blksnap_filter_request ureq;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&ureq, uarg, sizeof(ureq)))
		return -EFAULT;
	if (!request_name_ok(ureq.name))
		return -EINVAL;
	if (ureq.dev_major > MAJOR(~0U) || ureq.dev_minor > MINOR(~0U) ||
	    MKDEV(ureq.dev_major, ureq.dev_minor) == 0)
		return -EINVAL;
	req->dev_id = MKDEV(ureq.dev_major, ureq.dev_minor);
	req->cmd = ureq.cmd;
	req->opt = u64_to_user_ptr(ureq.opt);
	req->optlen = ureq.optlen;
	return 0;
}

/*
 * A reference to the tracker of the request's device.
 * Return: the tracker (put it with tracker_put()) or ERR_PTR(-ENOENT) when
 * the device has no tracker.
 */
static struct tracker *request_tracker(const struct tracker_request *req)
{
	struct tracker *tracker = tracker_get_by_dev(req->dev_id);

	return tracker ? tracker : ERR_PTR(-ENOENT);
}

static int request_attach(const struct tracker_request *req)
{
	return tracker_attach(req->dev_id);
}

static int request_detach(const struct tracker_request *req)
{
	struct tracker *tracker = request_tracker(req);
	int ret;

	if (IS_ERR(tracker))
		return PTR_ERR(tracker);
	ret = tracker_detach(tracker);
	tracker_put(tracker);
	return ret;
}

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
 * held across copy_to_user()), CBTMAP_BOUNCE_SIZE bytes at a time.
 */
#define CBTMAP_BOUNCE_SIZE 4096U

/*
 * One request is one switch's read map: if a switch (or the 255 wrap)
 * happens while the pieces are copied, the request fails with -EAGAIN
 * rather than return parts of two maps.
 */
static int ctl_cbtmap(struct tracker *tracker, void __user *opt, u32 optlen)
{
	struct blksnap_cbtmap arg;
	struct cbt_map *cbt_map;
	u8 __user *ubuf;
	unsigned long flags;
	uuid_t generation;
	u8 number;
	u32 done = 0;
	u8 *bounce;
	int ret = 0;

	if (optlen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, opt, sizeof(arg)))
		return -EFAULT;
	if (!arg.length)
		return -EINVAL;

	bounce = kmalloc(CBTMAP_BOUNCE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	cbt_map = tracker_cbt_map_get(tracker);
	/* Written so that neither test can wrap. */
	if (arg.offset > cbt_map->blk_count ||
	    arg.length > cbt_map->blk_count - arg.offset) {
		ret = -ENODATA;
		goto out;
	}
	spin_lock_irqsave(&cbt_map->lock, flags);
	generation = cbt_map->generation_id;
	number = cbt_map->snap_number_previous;
	spin_unlock_irqrestore(&cbt_map->lock, flags);

	ubuf = u64_to_user_ptr(arg.buffer);
	while (done < arg.length) {
		u32 n = min(CBTMAP_BOUNCE_SIZE, arg.length - done);

		spin_lock_irqsave(&cbt_map->lock, flags);
		if (cbt_map->is_corrupted) {
			ret = -EFAULT;
		} else if (cbt_map->snap_number_previous != number ||
			   !uuid_equal(&cbt_map->generation_id, &generation)) {
			ret = -EAGAIN;
		} else {
			memcpy(bounce, cbt_map->read_map + arg.offset + done,
			       n);
		}
		spin_unlock_irqrestore(&cbt_map->lock, flags);
		if (ret)
			goto out;

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

/*
 * A per-device command: cmd selects it, opt and optlen are its payload.
 * The CBT commands work on a reference to the map and its own lock; the
 * snapshot commands go to the snapshot code. May sleep.
 *
 * Return: 0 or -errno (see docs/kernel-abi.md); -ENOENT if the device has
 * no tracker, -ENOTTY for an unknown command.
 */
static int request_ctl(const struct tracker_request *req)
{
	struct tracker *tracker;
	int ret;

	tracker = request_tracker(req);
	if (IS_ERR(tracker))
		return PTR_ERR(tracker);

	switch (req->cmd) {
	case BLKFILTER_CTL_BLKSNAP_CBTINFO:
		ret = ctl_cbtinfo(tracker, req->opt, req->optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_CBTMAP:
		ret = ctl_cbtmap(tracker, req->opt, req->optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_CBTDIRTY:
		ret = ctl_cbtdirty(tracker, req->opt, req->optlen);
		break;
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD:
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO:
		ret = snapshot_device_ctl(tracker, req->cmd, req->opt,
					  req->optlen);
		break;
	default:
		ret = -ENOTTY;
	}
	tracker_put(tracker);
	return ret;
}

/*
 * The control device's requests (main.c). Every one needs CAP_SYS_ADMIN.
 * Return: 0 or -errno: -EPERM, -EFAULT, -EINVAL, then the handlers'.
 */
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
		req.opt = u64_to_user_ptr(arg.ctl.opt);
		req.optlen = arg.ctl.optlen;
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
 * Return: 0; -EPERM; -EFAULT; -EINVAL; -ENOENT; -ENODEV; -ENOMEM; -EINTR.
 */
int tracker_ioctl_test_cbt_switch(struct blksnap_filter_request __user *uarg)
{
	struct tracker_request req;
	struct tracker *tracker;
	int ret;

	ret = request_get(uarg, &req);
	if (ret)
		return ret;
	tracker = request_tracker(&req);
	if (IS_ERR(tracker))
		return PTR_ERR(tracker);
	ret = tracker_test_switch(tracker);
	tracker_put(tracker);
	return ret;
}
