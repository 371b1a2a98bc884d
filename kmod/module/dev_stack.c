// SPDX-License-Identifier: GPL-2.0
/*
 * The block devices under a block device (see dev_stack.h).
 *
 * Device-mapper and md record what their devices rest on as holder links
 * (bd_link_disk_holder()): the holder disk's slave_bdevs list, which sysfs
 * shows as /sys/block/<disk>/slaves. A loop device records nothing: the
 * device under it is the one holding its backing file, which the loop
 * driver shows in /sys/dev/block/<major>:<minor>/loop/backing_file (the
 * path as the reading task sees it, which is the task that resolves it).
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-stack: " fmt

#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/major.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include "dev_stack.h"

#ifdef CONFIG_BLOCK_HOLDER_DEPRECATED
/*
 * An entry of gendisk.slave_bdevs, private to block/holder.c (5.16 and
 * later; before, the links were kept on the lower bdev instead).
 */
struct stack_holder_disk {
	struct list_head list;
	struct block_device *bdev;
	int refcnt;
};

/* Add the devices @disk rests on (its slaves) to @lower. */
static unsigned int stack_slaves(struct gendisk *disk, dev_t *lower,
				 unsigned int max)
{
	struct stack_holder_disk *holder;
	unsigned int n = 0;

	mutex_lock(&disk->open_mutex);
	list_for_each_entry(holder, &disk->slave_bdevs, list) {
		if (n == max)
			break;
		lower[n++] = holder->bdev->bd_dev;
	}
	mutex_unlock(&disk->open_mutex);
	return n;
}
#else
static unsigned int stack_slaves(struct gendisk *disk, dev_t *lower,
				 unsigned int max)
{
	return 0;
}
#endif

/* The device holding the backing file of the loop device @dev, or 0. */
static dev_t stack_loop_backing(dev_t dev)
{
	char *name, *buf = kmalloc(PATH_MAX + 16, GFP_KERNEL);
	struct file *file;
	struct path path;
	dev_t lower = 0;
	loff_t pos = 0;
	ssize_t len;

	if (!buf)
		return 0;
	snprintf(buf, PATH_MAX, "/sys/dev/block/%u:%u/loop/backing_file",
		 MAJOR(dev), MINOR(dev));
	file = filp_open(buf, O_RDONLY, 0);
	if (IS_ERR(file))
		goto out;	/* unbound, or no sysfs here */
	len = kernel_read(file, buf, PATH_MAX, &pos);
	filp_close(file, NULL);
	if (len <= 1)
		goto out;
	buf[len - 1] = '\0';	/* the newline */
	name = buf;
	if (!kern_path(name, LOOKUP_FOLLOW, &path)) {
		struct inode *inode = d_inode(path.dentry);

		if (S_ISBLK(inode->i_mode))
			lower = inode->i_rdev;
		else if (inode->i_sb->s_bdev)
			lower = inode->i_sb->s_bdev->bd_dev;
		path_put(&path);
	}
out:
	kfree(buf);
	return lower;
}

static bool stack_has(const struct dev_stack *stack, dev_t dev)
{
	unsigned int i;

	for (i = 0; i < stack->count; i++)
		if (stack->dev[i] == dev)
			return true;
	return false;
}

void dev_stack_build(dev_t dev, struct dev_stack *stack)
{
	dev_t lower[DEV_STACK_MAX];
	unsigned int next = 0, n, i;
	struct block_device *bdev;

	might_sleep();
	stack->count = 0;
	stack->truncated = false;
	stack->dev[stack->count] = dev;
	stack->whole[stack->count++] = dev;
	/* Breadth first; @next is the first device not looked under yet. */
	while (next < stack->count) {
		dev = stack->dev[next];
		bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);
		if (IS_ERR(bdev)) {
			next++;
			continue;
		}
		stack->whole[next++] = disk_devt(bdev->bd_disk);
		n = stack_slaves(bdev->bd_disk, lower, DEV_STACK_MAX);
		if (bdev->bd_disk->major == LOOP_MAJOR && n < DEV_STACK_MAX) {
			lower[n] = stack_loop_backing(dev);
			if (lower[n])
				n++;
		}
		blkdev_put(bdev, FMODE_READ);

		for (i = 0; i < n; i++) {
			if (stack_has(stack, lower[i]))
				continue;
			if (stack->count == DEV_STACK_MAX) {
				stack->truncated = true;
				break;
			}
			stack->dev[stack->count] = lower[i];
			stack->whole[stack->count++] = lower[i];
		}
	}
	if (stack->truncated)
		pr_warn("[%u:%u] rests on more than %u devices: the rest is not checked\n",
			MAJOR(stack->dev[0]), MINOR(stack->dev[0]), DEV_STACK_MAX);
}

int dev_stack_find(const struct dev_stack *stack, dev_t dev, dev_t whole)
{
	unsigned int i;

	for (i = 0; i < stack->count; i++) {
		if (stack->dev[i] == dev ||
		    (stack->whole[i] == whole &&
		     (stack->dev[i] == whole || dev == whole)))
			return i;
	}
	return -1;
}
