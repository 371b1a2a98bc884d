/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-version differences met by the snapshot code. Built and tested on
 * 6.1; the branches for older kernels are written from the kernels' headers
 * and not built here. Kernels older than 5.15 (no blk_alloc_disk with a
 * checked add_disk) and newer than 6.4 (blkdev_get_by_dev with holder ops)
 * stop the build with #error where it matters.
 */
#ifndef __BLKSNAP_SNAPSHOT_COMPAT_H
#define __BLKSNAP_SNAPSHOT_COMPAT_H

#include <linux/version.h>
#include <linux/bio.h>
#include <linux/uio.h>

#ifndef ITER_SOURCE
#define ITER_SOURCE WRITE
#define ITER_DEST READ
#endif

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 15, 0)
#error "blksnap snapshots need Linux 5.15 or later (blk_alloc_disk, add_disk errors)"
#endif

/* bio_alloc() took (gfp, nr_vecs) before 5.18. */
static inline struct bio *snap_bio_alloc(struct block_device *bdev,
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

#endif /* __BLKSNAP_SNAPSHOT_COMPAT_H */
