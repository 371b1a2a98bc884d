/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every kernel-version difference the module meets, in one place: the rest
 * of the module is written against one kernel API (the newest one, where an
 * older kernel can express it) and includes this header instead of testing
 * LINUX_VERSION_CODE itself.
 *
 * Two kinds of helpers live here:
 *  - an interface of a newer kernel, defined under its own name for older
 *    kernels that lack it (bdev_nr_sectors(), memcpy_to_bvec(), ...);
 *  - a compat_*() wrapper where no single kernel's interface fits every
 *    kernel (opening a block device, allocating a disk, freezing a queue).
 *
 * The series built and tested are listed in docs/kernel-abi.md. Each
 * boundary below is the upstream release that changed the interface; the
 * code on both sides of it is built (and run in the test VM) for a Debian
 * kernel on that side. Kernels between two tested series take the branch
 * of their version and are not built here. 6.5 to 6.8, which opened block
 * devices in two other ways, are refused at build time: Debian ships none.
 *
 * 5.10 (bullseye) is the one series before 5.15. Its branches are written
 * "before 5.11" and 5.11 to 5.14 are refused: between 5.10 and 5.15 the
 * interfaces below changed over several releases (bi_bdev, bd_start_sect,
 * freeze_bdev(), disk_live(), blk_alloc_disk()), none of them is built
 * here, and a kernel in between would take branches nobody compiled.
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
#include <linux/workqueue.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
#include <linux/blk-integrity.h>
#endif

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "blksnap: kernels before 5.10 are not supported (see docs/kernel-abi.md)"
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 11, 0) && \
	LINUX_VERSION_CODE < KERNEL_VERSION(5, 15, 0)
#error "blksnap: kernels 5.11 to 5.14 are between the 5.10 and 5.15 interfaces; not written (see docs/kernel-abi.md)"
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

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
/* 5.10 named the largest bio BIO_MAX_PAGES. */
#define BIO_MAX_VECS BIO_MAX_PAGES

/* Copies @bvec->bv_len bytes from @from into the (one-page) segment. */
static inline void memcpy_to_bvec(struct bio_vec *bvec, const char *from)
{
	char *to = kmap_atomic(bvec->bv_page);

	memcpy(to + bvec->bv_offset, from, bvec->bv_len);
	kunmap_atomic(to);
}

/* Copies @bvec->bv_len bytes of the (one-page) segment to @to. */
static inline void memcpy_from_bvec(char *to, struct bio_vec *bvec)
{
	char *from = kmap_atomic(bvec->bv_page);

	memcpy(to, from + bvec->bv_offset, bvec->bv_len);
	kunmap_atomic(from);
}

/* Advances @iter by @bytes, which stay inside its current segment. */
static inline void bio_advance_iter_single(const struct bio *bio,
					   struct bvec_iter *iter,
					   unsigned int bytes)
{
	bio_advance_iter(bio, iter, bytes);
}
#endif

/*
 * How a bio names its device. Since 5.11/5.12 a bio holds the block device
 * (bi_bdev), partition or whole disk, and keeps it when submit_bio_noacct()
 * remaps a partition's sectors to the disk's (it sets BIO_REMAPPED). 5.10's
 * bio holds the disk and a partition number (bi_disk, bi_partno); the remap
 * sets bi_partno to 0, so a remapped bio names the whole disk there, with
 * the disk's sectors, and is never "remapped" in the newer sense.
 *
 * 5.10's partitions are looked up in the disk's RCU partition table (the
 * block layer's own disk_get_part() is not exported); a partition deleted
 * under an in-flight bio is not found, and the block layer fails that bio.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 11, 0)
static inline struct gendisk *compat_bio_disk(struct bio *bio)
{
	return bio->bi_bdev->bd_disk;
}

static inline dev_t compat_bio_dev(struct bio *bio)
{
	return bio->bi_bdev->bd_dev;
}

static inline bool compat_bio_remapped(struct bio *bio)
{
	return bio_flagged(bio, BIO_REMAPPED);
}

/*
 * The first sector and the size of the bio's device on its disk (0 and the
 * disk's size for a whole disk). Return: false if the device is gone.
 */
static inline bool compat_bio_dev_extent(struct bio *bio, sector_t *first,
					 sector_t *nr)
{
	*first = get_start_sect(bio->bi_bdev);
	*nr = bdev_nr_sectors(bio->bi_bdev);
	return true;
}
#else
static inline struct gendisk *compat_bio_disk(struct bio *bio)
{
	return bio->bi_disk;
}

/* Under rcu_read_lock(): the bio's partition (part0: the whole disk). */
static inline struct hd_struct *compat_bio_part_rcu(struct bio *bio)
{
	struct disk_part_tbl *ptbl = rcu_dereference(bio->bi_disk->part_tbl);

	if (unlikely(bio->bi_partno >= ptbl->len))
		return NULL;
	return rcu_dereference(ptbl->part[bio->bi_partno]);
}

/* 0 (no device) for a partition that is gone. */
static inline dev_t compat_bio_dev(struct bio *bio)
{
	struct hd_struct *part;
	dev_t dev = 0;

	if (!bio->bi_partno)
		return disk_devt(bio->bi_disk);
	rcu_read_lock();
	part = compat_bio_part_rcu(bio);
	if (part)
		dev = part_devt(part);
	rcu_read_unlock();
	return dev;
}

static inline bool compat_bio_remapped(struct bio *bio)
{
	return false;
}

static inline bool compat_bio_dev_extent(struct bio *bio, sector_t *first,
					 sector_t *nr)
{
	struct hd_struct *part;
	bool found = false;

	rcu_read_lock();
	part = compat_bio_part_rcu(bio);
	if (part) {
		*first = part->start_sect;
		/*
		 * The block layer's part_nr_sects_read() is private; on
		 * 64-bit kernels it is this plain read (its seqcount only
		 * guards 32-bit ones, which this module is not built for).
		 */
		*nr = READ_ONCE(part->nr_sects);
		found = true;
	}
	rcu_read_unlock();
	return found;
}
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
 * A clone of @src for @bdev from @bs: its pages, flags and iterator, no
 * vecs of its own. bio_alloc_clone() since 5.18; before, bio_clone_fast(),
 * which kept @src's device. With a gfp that may wait, never NULL.
 */
static inline struct bio *compat_bio_alloc_clone(struct block_device *bdev,
						 struct bio *src, gfp_t gfp,
						 struct bio_set *bs)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 18, 0)
	return bio_alloc_clone(bdev, src, gfp, bs);
#else
	struct bio *bio = bio_clone_fast(src, gfp, bs);

	if (bio)
		bio_set_dev(bio, bdev);
	return bio;
#endif
}

/* bio_init() took (bio, table, max_vecs) before 5.18. */
static inline void compat_bio_init(struct bio *bio, struct block_device *bdev,
				   struct bio_vec *table,
				   unsigned short max_vecs, unsigned int opf)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 18, 0)
	bio_init(bio, bdev, table, max_vecs, opf);
#else
	bio_init(bio, table, max_vecs);
	bio_set_dev(bio, bdev);
	bio->bi_opf = opf;
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

/*
 * A per-CPU (bound) workqueue says so with WQ_PERCPU since 6.17, and 7.x
 * warns at alloc_workqueue() when a queue says neither WQ_PERCPU nor
 * WQ_UNBOUND. Before 6.17 bound is the default and there is no flag (some
 * stable kernels have it backported, e.g. 6.12.117, but do not need it; it
 * is an enum constant, so #ifdef cannot see it).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
#define COMPAT_WQ_PERCPU WQ_PERCPU
#else
#define COMPAT_WQ_PERCPU 0
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
/* Block devices and disks: sizes, state, features                        */
/* ---------------------------------------------------------------------- */

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
/* 5.10 kept a device's size only in its inode. */
static inline sector_t bdev_nr_sectors(struct block_device *bdev)
{
	return i_size_read(bdev->bd_inode) >> SECTOR_SHIFT;
}

/* 5.10: a disk is live from add_disk() until del_gendisk() begins. */
static inline bool disk_live(struct gendisk *disk)
{
	return disk->flags & GENHD_FL_UP;
}
#endif

/*
 * Whether the device's queue does inline encryption (blk-crypto): its
 * crypto profile, called a keyslot manager before 5.16.
 */
static inline bool compat_bdev_inline_crypto(struct block_device *bdev)
{
#ifdef CONFIG_BLK_INLINE_ENCRYPTION
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
	return bdev_get_queue(bdev)->crypto_profile != NULL;
#else
	return bdev_get_queue(bdev)->ksm != NULL;
#endif
#else
	return false;
#endif
}

/* ---------------------------------------------------------------------- */
/* Opening block devices                                                  */
/* ---------------------------------------------------------------------- */

/**
 * struct compat_bdev - A block device this module opened for reading.
 * @bdev: The device; valid until compat_bdev_close().
 * @file: 6.9 and later: the open file holding the device.
 * @frozen_sb: Before 5.11: what freeze_bdev() returned, for thaw_bdev().
 */
struct compat_bdev {
	struct block_device *bdev;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	struct file *file;
#endif
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
	struct super_block *frozen_sb;
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

/*
 * Freezes the file system on the open device @ob (if any) and syncs the
 * device; compat_bdev_thaw() undoes it. Nests. Return: 0 or -errno.
 *
 * 6.8 renamed freeze_bdev()/thaw_bdev() to bdev_freeze()/bdev_thaw().
 * Before 5.11 freeze_bdev() returned the frozen super block (NULL: none),
 * which thaw_bdev() wants back.
 */
static inline int compat_bdev_freeze(struct compat_bdev *ob)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	return bdev_freeze(ob->bdev);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(5, 11, 0)
	return freeze_bdev(ob->bdev);
#else
	struct super_block *sb = freeze_bdev(ob->bdev);

	if (IS_ERR(sb))
		return PTR_ERR(sb);
	ob->frozen_sb = sb;
	return 0;
#endif
}

static inline void compat_bdev_thaw(struct compat_bdev *ob)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	bdev_thaw(ob->bdev);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(5, 11, 0)
	thaw_bdev(ob->bdev);
#else
	thaw_bdev(ob->bdev, ob->frozen_sb);
	ob->frozen_sb = NULL;
#endif
}

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
 *	io_min, max_hw_sectors, max_hw_discard_sectors, discard_granularity
 *	and max_write_zeroes_sectors are used.
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
	struct gendisk *disk;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 15, 0)
	disk = blk_alloc_disk(node);
	if (!disk)
		return ERR_PTR(-ENOMEM);
#else
	/* 5.10: the queue and the disk come apart and are joined here. */
	struct request_queue *q = blk_alloc_queue(node);

	if (!q)
		return ERR_PTR(-ENOMEM);
	disk = alloc_disk_node(0, node);
	if (!disk) {
		blk_cleanup_queue(q);
		return ERR_PTR(-ENOMEM);
	}
	disk->queue = q;
	/* No minors of its own: add_disk() hands out an extended dev_t. */
	disk->flags |= GENHD_FL_EXT_DEVT;
#endif
	blk_queue_logical_block_size(disk->queue, lim->logical_block_size);
	blk_queue_physical_block_size(disk->queue, lim->physical_block_size);
	blk_queue_io_min(disk->queue, lim->io_min);
	blk_queue_max_hw_sectors(disk->queue, lim->max_hw_sectors);
	blk_queue_max_discard_sectors(disk->queue, lim->max_hw_discard_sectors);
	disk->queue->limits.discard_granularity = lim->discard_granularity;
	blk_queue_max_write_zeroes_sectors(disk->queue,
					   lim->max_write_zeroes_sectors);
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 19, 0)
	/* Before 5.19 discard support was a queue flag too. */
	if (lim->max_hw_discard_sectors)
		blk_queue_flag_set(QUEUE_FLAG_DISCARD, disk->queue);
#endif
	return disk;
#endif
}

/* 5.10 called "no partitions" GENHD_FL_NO_PART_SCAN (later an enum). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
#define GENHD_FL_NO_PART GENHD_FL_NO_PART_SCAN
#endif

/* add_disk() could not fail before 5.15. Return: 0 or -errno. */
static inline int compat_add_disk(struct gendisk *disk)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 15, 0)
	return add_disk(disk);
#else
	add_disk(disk);
	return 0;
#endif
}

/*
 * Drops a disk of compat_blk_alloc_disk(), after del_gendisk() if it was
 * added. Before 5.15 its queue was separate and is cleaned up here.
 */
static inline void compat_put_disk(struct gendisk *disk)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 15, 0)
	blk_cleanup_queue(disk->queue);
#endif
	put_disk(disk);
}

#endif /* __BLKSNAP_COMPAT_H */
