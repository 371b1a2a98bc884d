/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The difference storage of a snapshot: where copy-on-write saves the old
 * contents of chunks. A regular file, an unnamed temporary file made in a
 * directory (O_TMPFILE), or a block device opened exclusively. Files grow in
 * steps of diff_storage_minimum sectors up to the limit, in a worker.
 */
#ifndef __BLKSNAP_DIFF_STORAGE_H
#define __BLKSNAP_DIFF_STORAGE_H

#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/blkdev.h>

struct event_queue;

/* The first sectors of the storage are never used (as upstream). */
#define DIFF_STORAGE_SKIP_SECT 4096

/**
 * struct diff_storage - A difference storage.
 * @kref: References: the snapshot and each diff area hold one.
 * @file: The open storage: a regular file, a temporary file or a block
 *	device. Immutable.
 * @bdev: The block device that holds the storage (the device itself, or
 *	the file system's device), or NULL (e.g. tmpfs). The snapshot refuses
 *	storage resting on its own devices (dev_stack.h). Valid while @file
 *	is open.
 * @can_grow: A file (not a block device). Immutable.
 * @limit: The most sectors the storage may use. Immutable.
 * @events: Where no_space events go (the snapshot's queue). Immutable.
 * @lock: Guards @capacity, @filled, @growing, @grow_error, @error and
 *	@requested.
 * @capacity: Usable sectors today.
 * @filled: Sectors handed out; the next chunk goes at @filled.
 * @growing: A growth step is queued or running.
 * @grow_error: Sticky: 0, or why a growth step failed; the storage does
 *	not grow after it, but what it has is handed out.
 * @error: Sticky: 0, or why no more space can be handed out (the storage
 *	is full: -ENOSPC or @grow_error).
 * @requested: Sectors asked for by the last failing allocation.
 * @wq: Allocations waiting for a growth step.
 * @grow_work: The growth step.
 */
struct diff_storage {
	struct kref kref;
	struct file *file;
	struct block_device *bdev;
	bool can_grow;
	sector_t limit;
	struct event_queue *events;

	spinlock_t lock;
	sector_t capacity;
	sector_t filled;
	bool growing;
	int grow_error;
	int error;
	sector_t requested;
	wait_queue_head_t wq;
	struct work_struct grow_work;
};

int diff_storage_wq_init(void);
void diff_storage_wq_done(void);

/*
 * Opens the storage at @path (kernel string) with @limit sectors. May sleep.
 * Returns the storage or an ERR_PTR: -EINVAL when the path is not a regular
 * file, directory or block device; -ENOSPC when less than one step fits.
 */
struct diff_storage *diff_storage_open(const char *path, sector_t limit,
				       struct event_queue *events);
void diff_storage_put(struct diff_storage *ds);
static inline void diff_storage_get(struct diff_storage *ds)
{
	kref_get(&ds->kref);
}

/*
 * Hands out @nr_sect contiguous sectors in *@sector. May sleep (waits for a
 * growth step). Returns 0, or once the storage is full (the limit, the
 * device's end, or a failed growth step and the space before it used up)
 * -ENOSPC (a no_space event is queued, once) or the growth's error.
 */
int diff_storage_alloc(struct diff_storage *ds, sector_t nr_sect,
		       sector_t *sector);

/*
 * The block device the storage is on (the device itself, or its file
 * system's device), or 0 (a file system without one, such as tmpfs).
 */
static inline dev_t diff_storage_dev(struct diff_storage *ds)
{
	return ds->bdev ? ds->bdev->bd_dev : 0;
}

/**
 * struct cow_buf - A page-backed buffer for chunk I/O.
 * @data: The vmalloc'ed memory.
 * @size: Bytes, a multiple of PAGE_SIZE.
 * @nr_pages: Pages.
 * @bvec: One bio_vec per page of @data.
 */
struct cow_buf {
	void *data;
	size_t size;
	unsigned int nr_pages;
	struct bio_vec *bvec;
};

struct cow_buf *cow_buf_alloc(size_t size);
void cow_buf_free(struct cow_buf *buf);

/*
 * Synchronous I/O between @buf (from the page-aligned byte @offset, @len
 * bytes) and the storage at @sector. May sleep. Returns 0 or -errno (-EIO on
 * a short transfer).
 */
int diff_storage_rw(struct diff_storage *ds, bool write, sector_t sector,
		    struct cow_buf *buf, size_t offset, size_t len);

#endif /* __BLKSNAP_DIFF_STORAGE_H */
