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

static const struct blksnap_version version = {
	.major = BLKSNAP_VERSION_MAJOR,
	.minor = BLKSNAP_VERSION_MINOR,
	.revision = BLKSNAP_VERSION_REVISION,
	.build = BLKSNAP_VERSION_BUILD,
};

static long ctrl_unlocked_ioctl(struct file *filp, unsigned int cmd,
				unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case IOCTL_BLKSNAP_VERSION:
		if (copy_to_user(argp, &version, sizeof(version)))
			return -EFAULT;
		return 0;
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

	ret = misc_register(&ctrl_dev);
	if (ret)
		return ret;
	pr_info("version %u.%u.%u.%u loaded\n", version.major, version.minor,
		version.revision, version.build);
	return 0;
}

static void __exit blksnap_exit(void)
{
	misc_deregister(&ctrl_dev);
	pr_info("unloaded\n");
}

module_init(blksnap_init);
module_exit(blksnap_exit);

MODULE_DESCRIPTION("Change block tracking and snapshots of block devices");
MODULE_VERSION("2.0.0.0");
MODULE_LICENSE("GPL");
