// SPDX-License-Identifier: GPL-2.0
/*
 * blksnap: module entry, the control device and its ioctl dispatch.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <blksnap.h>
#include "params.h"
#include "filter.h"
#include "ioctl_hook.h"
#include "tracker.h"
#include "tracker_ctl.h"
#include "snapshot.h"

static const struct blksnap_version version = {
	.major = BLKSNAP_VERSION_MAJOR,
	.minor = BLKSNAP_VERSION_MINOR,
	.revision = BLKSNAP_VERSION_REVISION,
	.build = BLKSNAP_VERSION_BUILD,
};

/* BLKFILTER requests on device fds are answered (ioctl_hook.c). */
static bool blkfilter_hooked;

static long ctrl_unlocked_ioctl(struct file *filp, unsigned int cmd,
				unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case IOCTL_BLKSNAP_VERSION:
		if (copy_to_user(argp, &version, sizeof(version)))
			return -EFAULT;
		return 0;
	case IOCTL_BLKSNAP_SNAPSHOT_CREATE:
		return snapshot_ioctl_create(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_DESTROY:
		return snapshot_ioctl_destroy(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_TAKE:
		return snapshot_ioctl_take(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_COLLECT:
		return snapshot_ioctl_collect(argp);
	case IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT:
		return snapshot_ioctl_wait_event(argp);
	case IOCTL_BLKSNAP_FILTER_ATTACH:
		return tracker_ioctl_attach(argp);
	case IOCTL_BLKSNAP_FILTER_DETACH:
		return tracker_ioctl_detach(argp);
	case IOCTL_BLKSNAP_FILTER_CTL:
		return tracker_ioctl_ctl(argp);
	case IOCTL_BLKSNAP_TEST_CBT_SWITCH:
		if (!enable_test_ioctls)
			return -ENOTTY;
		return tracker_ioctl_test_cbt_switch(argp);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations ctrl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ctrl_unlocked_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice ctrl_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = BLKSNAP_CTL,
	.fops = &ctrl_fops,
};

static int __init blksnap_init(void)
{
	int ret;

	params_validate();

	ret = tracker_init();
	if (ret)
		return ret;
	ret = snapshot_init();
	if (ret)
		goto fail_tracker_done;
	ret = filter_init(&tracker_filter_ops);
	if (ret)
		goto fail_snapshot_done;
	/*
	 * Optional: without it, user space (libblksnap's probe) uses the
	 * control device for the per-device requests.
	 */
	if (blkfilter_ioctls) {
		ret = ioctl_hook_init(tracker_ioctl_blkfilter);
		if (ret)
			pr_warn("BLKFILTER ioctls on device fds not available (%d): use the control device\n",
				ret);
		blkfilter_hooked = !ret;
	}
	ret = misc_register(&ctrl_dev);
	if (ret)
		goto fail_ioctl_hook_done;

	pr_info("version %u.%u.%u.%u loaded\n", version.major, version.minor,
		version.revision, version.build);
	return 0;

fail_ioctl_hook_done:
	if (blkfilter_hooked)
		ioctl_hook_done();
	filter_done();
fail_snapshot_done:
	snapshot_done();
fail_tracker_done:
	tracker_done();
	return ret;
}

static void __exit blksnap_exit(void)
{
	misc_deregister(&ctrl_dev);
	if (blkfilter_hooked)
		ioctl_hook_done();
	filter_done();
	snapshot_done();
	tracker_done();
	pr_info("unloaded\n");
}

module_init(blksnap_init);
module_exit(blksnap_exit);

MODULE_DESCRIPTION("Change block tracking and snapshots of block devices");
MODULE_VERSION("2.0.0.0");
MODULE_LICENSE("GPL");
