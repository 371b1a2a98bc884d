// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot images. Bio-based disks whose reads and writes go to the diff
 * area's workers. A write (or write-zeroes) lands in the difference storage
 * only and marks both CBT maps of the original's tracker first, so the next
 * backup reads those blocks again (cbt_map_set_both(), as the seed does).
 * A discard changes nothing (the data stays as it was, which a discard
 * allows) and costs nothing; a flush completes at once: every write is in
 * the storage when it completes, and the storage does not outlive the
 * snapshot.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-image: " fmt

#include <linux/module.h>
#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/slab.h>
#include <blksnap.h>
#include "snapimage.h"
#include "compat.h"
#include "diff_area.h"
#include "cbt_map.h"

/**
 * struct snapimage - What an image disk's private_data points to.
 * @da: The device's copy-on-write state.
 * @cbt_map: The original's CBT map (a reference), marked by writes.
 */
struct snapimage {
	struct diff_area *da;
	struct cbt_map *cbt_map;
};

static COMPAT_SUBMIT_BIO_T snapimage_submit_bio(struct bio *bio)
{
	struct snapimage *image = compat_bio_disk(bio)->private_data;

	switch (bio_op(bio)) {
	case REQ_OP_WRITE:
	case REQ_OP_WRITE_ZEROES:
		if (!bio_sectors(bio))
			break;
		/* A map the range does not fit (resized) refuses the mark. */
		cbt_map_set_both(image->cbt_map, bio->bi_iter.bi_sector,
				 bio_sectors(bio));
		fallthrough;
	case REQ_OP_READ:
		if (!bio_sectors(bio))
			break;
		diff_area_image_bio(image->da, bio);
		return COMPAT_SUBMIT_BIO_DONE;
	case REQ_OP_DISCARD:
	case REQ_OP_FLUSH:
		break;
	default:
		/* Not advertised (secure erase, zones): refused. */
		bio_io_error(bio);
		return COMPAT_SUBMIT_BIO_DONE;
	}
	bio_endio(bio);
	return COMPAT_SUBMIT_BIO_DONE;
}

static const struct block_device_operations snapimage_fops = {
	.owner = THIS_MODULE,
	.submit_bio = snapimage_submit_bio,
};

struct gendisk *snapimage_create(struct diff_area *da,
				 struct cbt_map *cbt_map)
{
	struct snapimage *image;
	struct gendisk *disk;
	int err;

	struct block_device *orig = da->orig.bdev;
	struct queue_limits lim = {
		.logical_block_size = bdev_logical_block_size(orig),
		.physical_block_size = bdev_physical_block_size(orig),
		.io_min = bdev_io_min(orig),
		.max_hw_sectors = 2048,
		/* Discards are taken (and change nothing), any size. */
		.max_hw_discard_sectors = UINT_MAX >> SECTOR_SHIFT,
		.discard_granularity = bdev_logical_block_size(orig),
		.max_write_zeroes_sectors = 2048,
	};

	image = kzalloc(sizeof(*image), GFP_KERNEL);
	if (!image)
		return ERR_PTR(-ENOMEM);
	image->da = da;
	image->cbt_map = cbt_map;
	cbt_map_get(cbt_map);

	disk = compat_blk_alloc_disk(&lim, NUMA_NO_NODE);
	if (IS_ERR(disk)) {
		err = PTR_ERR(disk);
		goto fail_free;
	}

	/* major 0, minors 0: the block layer hands out an extended dev_t. */
	disk->flags |= GENHD_FL_NO_PART;
	disk->fops = &snapimage_fops;
	disk->private_data = image;
	snprintf(disk->disk_name, DISK_NAME_LEN, "%s-%d-%d",
		 BLKSNAP_IMAGE_NAME, MAJOR(da->dev_id), MINOR(da->dev_id));
	set_capacity(disk, da->capacity);

	err = compat_add_disk(disk);
	if (err) {
		pr_err("adding image %s failed: %d\n", disk->disk_name, err);
		compat_put_disk(disk);
		goto fail_free;
	}
	pr_info("image %s [%u:%u] created\n", disk->disk_name,
		MAJOR(disk_devt(disk)), MINOR(disk_devt(disk)));
	return disk;

fail_free:
	cbt_map_put(image->cbt_map);
	kfree(image);
	return ERR_PTR(err);
}

void snapimage_destroy(struct gendisk *disk)
{
	struct snapimage *image = disk->private_data;

	pr_info("image %s removed\n", disk->disk_name);
	/* Drains submitters: no snapimage_submit_bio() runs after this. */
	del_gendisk(disk);
	/* Serve (or fail) what was queued before. */
	diff_area_flush_image(image->da);
	compat_put_disk(disk);
	cbt_map_put(image->cbt_map);
	kfree(image);
}
