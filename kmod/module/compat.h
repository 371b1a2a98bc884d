/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every kernel-version difference the module meets, in one place: the rest
 * of the module is written against one kernel API (the newest one, where an
 * older kernel can express it) and includes this header instead of testing
 * LINUX_VERSION_CODE itself.
 *
 * Two kinds of helpers live here:
 *  - an interface of a newer kernel, defined under its own name for older
 *    kernels that lack it (bdev_freeze() and bdev_thaw(), ...);
 *  - a compat_*() wrapper where no single kernel's interface fits every
 *    kernel (opening a block device, allocating a disk, freezing a queue).
 *
 * The series built and tested are listed in docs/kernel-abi.md. Each
 * boundary below is the upstream release that changed the interface; the
 * code on both sides of it is built (and run in the test VM) for a Debian
 * kernel on that side. Kernels between two tested series take the branch
 * of their version and are not built here. 6.5 to 6.8, which opened block
 * devices in two other ways, are refused at build time: Debian ships none.
 * So are kernels before 5.15 (bullseye's 5.10): not ported yet.
 */
#ifndef __BLKSNAP_COMPAT_H
#define __BLKSNAP_COMPAT_H

#include <linux/version.h>
#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/bio.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/ftrace.h>
#include <linux/sched/mm.h>
#include <linux/uio.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
#include <linux/blk-integrity.h>
#endif

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 15, 0)
#error "blksnap: kernels before 5.15 are not ported yet (5.10's bios name a disk and partition, bi_disk/bi_partno, not a block device; see docs/kernel-abi.md)"
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0) && \
	LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0)
#error "blksnap: kernels 6.5 to 6.8 open block devices through holder ops or bdev_handle; not written (see docs/kernel-abi.md)"
#endif

/* ---------------------------------------------------------------------- */
/* I/O iterators and bios                                                 */
/* ---------------------------------------------------------------------- */

/* 6.3 named the directions of an iov_iter after the data's way. */
#ifndef ITER_SOURCE
#define ITER_SOURCE WRITE
#define ITER_DEST READ
#endif

/* bio_alloc() took (gfp, nr_vecs) before 5.18. */
static inline struct bio *compat_bio_alloc(struct block_device *bdev,
					   unsigned short nr_vecs,
					   unsigned int opf, gfp_t gfp)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 18, 0)
	return bio_alloc(bdev, nr_vecs, opf, gfp);
#else
	struct bio *bio = bio_alloc(gfp, nr_vecs);

	bio_set_dev(bio, bdev);
	bio->bi_opf = opf;
	return bio;
#endif
}

/*
 * A disk's submit_bio() returned a blk_qc_t cookie before 5.16. Declare the
 * handler with COMPAT_SUBMIT_BIO_T and end it with COMPAT_SUBMIT_BIO_DONE.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
#define COMPAT_SUBMIT_BIO_T void
#define COMPAT_SUBMIT_BIO_DONE
#else
#define COMPAT_SUBMIT_BIO_T blk_qc_t
#define COMPAT_SUBMIT_BIO_DONE BLK_QC_T_NONE
#endif

/*
 * Writes through a file with the file system's freeze protection held:
 * since 6.8 vfs_iter_write() takes it itself (taking it around the call as
 * well is a recursive read lock, which lockdep reports and a waiting
 * freezer turns into a deadlock); before, the caller had to.
 */
static inline ssize_t compat_vfs_iter_write(struct file *file,
					    struct iov_iter *iter, loff_t *pos)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	return vfs_iter_write(file, iter, pos, 0);
#else
	ssize_t ret;

	file_start_write(file);
	ret = vfs_iter_write(file, iter, pos, 0);
	file_end_write(file);
	return ret;
#endif
}

/*
 * A directory-reading actor (filldir_t) returned int, nonzero to stop,
 * before 6.1; bool, true to go on, since.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
#define COMPAT_FILLDIR_T bool
#define COMPAT_FILLDIR_NEXT true
#define COMPAT_FILLDIR_STOP false
#else
#define COMPAT_FILLDIR_T int
#define COMPAT_FILLDIR_NEXT 0
#define COMPAT_FILLDIR_STOP (-ENOSPC)
#endif

/* ---------------------------------------------------------------------- */
/* ftrace                                                                 */
/* ---------------------------------------------------------------------- */

/*
 * The registers an ftrace callback gets: struct ftrace_regs since 5.11,
 * whose full pt_regs ftrace_get_regs() returns (NULL when the ops did not
 * ask for them); struct pt_regs before.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 11, 0)
typedef struct ftrace_regs compat_ftrace_regs_t;
static __always_inline struct pt_regs *
compat_ftrace_get_regs(compat_ftrace_regs_t *fregs)
{
	return ftrace_get_regs(fregs);
}
#else
typedef struct pt_regs compat_ftrace_regs_t;
static __always_inline struct pt_regs *
compat_ftrace_get_regs(compat_ftrace_regs_t *regs)
{
	return regs;
}
#endif

/* ftrace_free_filter() is exported from 6.1; before, reset to no filter. */
static inline void compat_ftrace_free_filter(struct ftrace_ops *ops)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
	ftrace_free_filter(ops);
#else
	ftrace_set_filter(ops, NULL, 0, 1);
#endif
}

/*
 * The block layer's ioctl entry points, which ioctl_hook.c hooks by name
 * (none is exported since 5.13; ftrace finds them in its own table):
 *
 *  - COMPAT_BLKDEV_IOCTL_NATIVE: the files' ->unlocked_ioctl. Since 5.13
 *    ("block: merge block_ioctl into blkdev_ioctl") blkdev_ioctl(file, cmd,
 *    arg); before, the static block_ioctl(file, cmd, arg), which calls the
 *    exported blkdev_ioctl(bdev, mode, cmd, arg). Same on 6.1, 6.12, 7.x.
 *  - COMPAT_BLKDEV_IOCTL_COMPAT: compat_blkdev_ioctl(file, cmd, arg), the
 *    ->compat_ioctl, unchanged since 5.6.
 *  - COMPAT_BLKDEV_IOCTL_COMMON: the static blkdev_common_ioctl(bdev,
 *    mode, cmd, arg, argp) both entries call (5.6 and later; mode is
 *    fmode_t before 6.5, blk_mode_t since: both one register). The
 *    compiler may inline it: then it has no ftrace site and is not hooked.
 *
 * The _CMD_ARG values are the zero-based argument that holds the request
 * number (blkdev_common_ioctl's user pointer, already converted for a
 * compat caller, is its last argument).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 13, 0)
#define COMPAT_BLKDEV_IOCTL_NATIVE "blkdev_ioctl"
#else
#define COMPAT_BLKDEV_IOCTL_NATIVE "block_ioctl"
#endif
#define COMPAT_BLKDEV_IOCTL_COMPAT "compat_blkdev_ioctl"
#define COMPAT_BLKDEV_IOCTL_COMMON "blkdev_common_ioctl"
#define COMPAT_BLKDEV_IOCTL_ENTRY_CMD_ARG 1
#define COMPAT_BLKDEV_IOCTL_COMMON_CMD_ARG 2

/* ---------------------------------------------------------------------- */
/* Opening block devices                                                  */
/* ---------------------------------------------------------------------- */

/**
 * struct compat_bdev - A block device this module opened for reading.
 * @bdev: The device; valid until compat_bdev_close().
 * @file: 6.9 and later: the open file holding the device.
 */
struct compat_bdev {
	struct block_device *bdev;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	struct file *file;
#endif
};

/* Opens device @dev for reading (not exclusively). Return: 0 or -errno. */
static inline int compat_bdev_open(struct compat_bdev *ob, dev_t dev)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	struct file *file = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL,
						  NULL);

	if (IS_ERR(file))
		return PTR_ERR(file);
	ob->file = file;
	ob->bdev = file_bdev(file);
#else
	struct block_device *bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);

	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	ob->bdev = bdev;
#endif
	return 0;
}

static inline void compat_bdev_close(struct compat_bdev *ob)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	fput(ob->file);
#else
	blkdev_put(ob->bdev, FMODE_READ);
#endif
	ob->bdev = NULL;
}

/* ---------------------------------------------------------------------- */
/* Freezing                                                               */
/* ---------------------------------------------------------------------- */

/* 6.8 renamed freeze_bdev()/thaw_bdev() to bdev_freeze()/bdev_thaw(). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
static inline int bdev_freeze(struct block_device *bdev)
{
	return freeze_bdev(bdev);
}

static inline int bdev_thaw(struct block_device *bdev)
{
	return thaw_bdev(bdev);
}
#endif

/*
 * Since 6.14 blk_mq_freeze_queue() enters a no-I/O allocation scope and
 * returns its flags, which blk_mq_unfreeze_queue() takes back. Before, the
 * caller sets the scope itself if it wants one: compat_freeze_queue() does
 * it on every kernel, so allocations under a frozen queue never recurse
 * into I/O on it.
 */
static inline unsigned int compat_freeze_queue(struct request_queue *q)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
	return blk_mq_freeze_queue(q);
#else
	blk_mq_freeze_queue(q);
	return memalloc_noio_save();
#endif
}

static inline void compat_unfreeze_queue(struct request_queue *q,
					 unsigned int memflags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
	blk_mq_unfreeze_queue(q, memflags);
#else
	memalloc_noio_restore(memflags);
	blk_mq_unfreeze_queue(q);
#endif
}

/* ---------------------------------------------------------------------- */
/* Disks                                                                  */
/* ---------------------------------------------------------------------- */

/**
 * compat_blk_alloc_disk() - Allocate a bio-based disk with its queue.
 * @lim: The queue's limits; only logical_block_size, physical_block_size,
 *	io_min and max_hw_sectors are used.
 * @node: NUMA node.
 *
 * Since 6.9 the limits are given at allocation (the blk_queue_*() setters
 * went in 6.11) and failures come back as ERR_PTR; before, blk_alloc_disk()
 * returned NULL and the limits were set on the queue afterwards.
 *
 * Return: the disk, or ERR_PTR(-errno).
 */
static inline struct gendisk *compat_blk_alloc_disk(struct queue_limits *lim,
						    int node)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	return blk_alloc_disk(lim, node);
#else
	struct gendisk *disk = blk_alloc_disk(node);

	if (!disk)
		return ERR_PTR(-ENOMEM);
	blk_queue_logical_block_size(disk->queue, lim->logical_block_size);
	blk_queue_physical_block_size(disk->queue, lim->physical_block_size);
	blk_queue_io_min(disk->queue, lim->io_min);
	blk_queue_max_hw_sectors(disk->queue, lim->max_hw_sectors);
	return disk;
#endif
}

#endif /* __BLKSNAP_COMPAT_H */
