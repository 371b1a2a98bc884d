// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot images. Bio-based disks: reads go to the diff area's workers;
 * the image is read-only, so any write or discard fails with an I/O error
 * (the disk is also marked read-only, so opening it for writing fails).
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-image: " fmt

#include <linux/module.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <blksnap.h>
#include "snapimage.h"
#include "compat.h"
#include "diff_area.h"

static COMPAT_SUBMIT_BIO_T snapimage_submit_bio(struct bio *bio)
{
	struct diff_area *da = compat_bio_disk(bio)->private_data;

	switch (bio_op(bio)) {
	case REQ_OP_READ:
		if (!bio_sectors(bio)) {
			bio_endio(bio);
			return COMPAT_SUBMIT_BIO_DONE;
		}
		diff_area_image_bio(da, bio);
		return COMPAT_SUBMIT_BIO_DONE;
	case REQ_OP_FLUSH:
		bio_endio(bio);
		return COMPAT_SUBMIT_BIO_DONE;
	default:
		/* Read-only image: writes, discards and the rest fail. */
		bio_io_error(bio);
		return COMPAT_SUBMIT_BIO_DONE;
	}
}

static const struct block_device_operations snapimage_fops = {
	.owner = THIS_MODULE,
	.submit_bio = snapimage_submit_bio,
};

struct gendisk *snapimage_create(struct diff_area *da)
{
	struct gendisk *disk;
	int err;

	struct block_device *orig = da->orig.bdev;
	struct queue_limits lim = {
		.logical_block_size = bdev_logical_block_size(orig),
		.physical_block_size = bdev_physical_block_size(orig),
		.io_min = bdev_io_min(orig),
		.max_hw_sectors = 2048,
	};

	disk = compat_blk_alloc_disk(&lim, NUMA_NO_NODE);
	if (IS_ERR(disk))
		return disk;

	/* major 0, minors 0: the block layer hands out an extended dev_t. */
	disk->flags |= GENHD_FL_NO_PART;
	disk->fops = &snapimage_fops;
	disk->private_data = da;
	snprintf(disk->disk_name, DISK_NAME_LEN, "%s-%d-%d",
		 BLKSNAP_IMAGE_NAME, MAJOR(da->dev_id), MINOR(da->dev_id));
	set_capacity(disk, da->capacity);
	set_disk_ro(disk, true);

	err = compat_add_disk(disk);
	if (err) {
		pr_err("adding image %s failed: %d\n", disk->disk_name, err);
		compat_put_disk(disk);
		return ERR_PTR(err);
	}
	pr_info("image %s [%u:%u] created\n", disk->disk_name,
		MAJOR(disk_devt(disk)), MINOR(disk_devt(disk)));
	return disk;
}

void snapimage_destroy(struct gendisk *disk)
{
	struct diff_area *da = disk->private_data;

	pr_info("image %s removed\n", disk->disk_name);
	/* Drains submitters: no snapimage_submit_bio() runs after this. */
	del_gendisk(disk);
	/* Serve (or fail) what was queued before. */
	diff_area_flush(da);
	compat_put_disk(disk);
}
