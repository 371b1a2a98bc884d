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
#include "compat.h"
#include "dev_stack.h"

/* A sysfs file of @dev, whose contents (up to @size bytes) go to @buf. */
static ssize_t stack_read_sysfs(dev_t dev, const char *name, char *buf,
				size_t size)
{
	struct file *file;
	loff_t pos = 0;
	ssize_t len;

	snprintf(buf, size, "/sys/dev/block/%u:%u/%s", MAJOR(dev), MINOR(dev),
		 name);
	file = filp_open(buf, O_RDONLY, 0);
	if (IS_ERR(file))
		return PTR_ERR(file);	/* not there, or no sysfs here */
	len = kernel_read(file, buf, size - 1, &pos);
	filp_close(file, NULL);
	if (len > 0 && buf[len - 1] == '\n')
		len--;	/* every sysfs value ends with one */
	if (len >= 0)
		buf[len] = '\0';
	return len;
}

/* The names in a device's slaves directory, gathered by stack_name(). */
struct stack_names {
	struct dir_context ctx;
	char name[DEV_STACK_MAX][BDEVNAME_SIZE];
	unsigned int count;
};

static COMPAT_FILLDIR_T stack_name(struct dir_context *ctx, const char *name,
				   int len, loff_t pos, u64 ino,
				   unsigned int type)
{
	struct stack_names *names = container_of(ctx, struct stack_names, ctx);

	if (name[0] == '.' || len >= BDEVNAME_SIZE)
		return COMPAT_FILLDIR_NEXT;
	if (names->count == DEV_STACK_MAX)
		return COMPAT_FILLDIR_STOP;
	memcpy(names->name[names->count], name, len);
	names->name[names->count++][len] = '\0';
	return COMPAT_FILLDIR_NEXT;
}

/*
 * Add the devices @dev rests on (its holder links: /sys/block/<disk>/slaves,
 * each entry's dev file) to @lower. Read through sysfs, the one interface
 * to them that is the same on every kernel (block/holder.c keeps the links
 * in a private structure, whose layout and lock changed after 6.1).
 */
static unsigned int stack_slaves(dev_t dev, dev_t *lower, unsigned int max)
{
	struct stack_names *names = kzalloc(sizeof(*names), GFP_KERNEL);
	char *buf = kmalloc(PATH_MAX, GFP_KERNEL);
	unsigned int major, minor, n = 0, i;
	struct file *dir;

	if (!names || !buf)
		goto out;
	snprintf(buf, PATH_MAX, "/sys/dev/block/%u:%u/slaves", MAJOR(dev),
		 MINOR(dev));
	dir = filp_open(buf, O_RDONLY | O_DIRECTORY, 0);
	if (IS_ERR(dir))
		goto out;	/* a partition, or no sysfs here */
	names->ctx.actor = stack_name;
	iterate_dir(dir, &names->ctx);
	filp_close(dir, NULL);
	for (i = 0; i < names->count && n < max; i++) {
		char rel[BDEVNAME_SIZE + 16];

		snprintf(rel, sizeof(rel), "slaves/%s/dev", names->name[i]);
		if (stack_read_sysfs(dev, rel, buf, PATH_MAX) > 0 &&
		    sscanf(buf, "%u:%u", &major, &minor) == 2)
			lower[n++] = MKDEV(major, minor);
	}
out:
	kfree(buf);
	kfree(names);
	return n;
}

/* The device holding the backing file of the loop device @dev, or 0. */
static dev_t stack_loop_backing(dev_t dev)
{
	char *buf = kmalloc(PATH_MAX + 16, GFP_KERNEL);
	struct path path;
	dev_t lower = 0;

	if (!buf)
		return 0;
	/* Unbound: nothing under it. */
	if (stack_read_sysfs(dev, "loop/backing_file", buf, PATH_MAX + 16) > 0 &&
	    !kern_path(buf, LOOKUP_FOLLOW, &path)) {
		struct inode *inode = d_inode(path.dentry);

		if (S_ISBLK(inode->i_mode))
			lower = inode->i_rdev;
		else if (inode->i_sb->s_bdev)
			lower = inode->i_sb->s_bdev->bd_dev;
		path_put(&path);
	}
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
	struct compat_bdev ob;
	struct gendisk *disk;

	might_sleep();
	stack->count = 0;
	stack->truncated = false;
	stack->dev[stack->count] = dev;
	stack->whole[stack->count++] = dev;
	/* Breadth first; @next is the first device not looked under yet. */
	while (next < stack->count) {
		dev = stack->dev[next];
		if (compat_bdev_open(&ob, dev)) {
			next++;
			continue;
		}
		disk = ob.bdev->bd_disk;
		stack->whole[next++] = disk_devt(disk);
		n = stack_slaves(disk_devt(disk), lower, DEV_STACK_MAX);
		if (disk->major == LOOP_MAJOR && n < DEV_STACK_MAX) {
			lower[n] = stack_loop_backing(dev);
			if (lower[n])
				n++;
		}
		compat_bdev_close(&ob);

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
