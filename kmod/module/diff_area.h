/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The copy-on-write state of one device of a taken snapshot: which chunks
 * were saved to the difference storage and where, the writes waiting for
 * their chunks, and the reads of the snapshot image.
 */
#ifndef __BLKSNAP_DIFF_AREA_H
#define __BLKSNAP_DIFF_AREA_H

#include <linux/blkdev.h>
#include <linux/bio.h>
#include <linux/list.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include "compat.h"

struct diff_storage;
struct event_queue;
struct cow_buf;
struct diff_area;

/* Chunk locks are hashed: two chunks may share one, which only serialises. */
#define DIFF_AREA_LOCKS 64
#define DIFF_AREA_MAX_WORKERS 4

/**
 * struct diff_area_worker - A worker and its private chunk buffer.
 * @work: The work item.
 * @da: The owner.
 * @buf: A buffer of one chunk, used only by this worker.
 */
struct diff_area_worker {
	struct work_struct work;
	struct diff_area *da;
	struct cow_buf *buf;
};

/**
 * struct diff_area - Copy-on-write state of one device.
 * @dev_id: The device. Immutable.
 * @orig: The device, opened for reading (our own open). Immutable.
 * @storage: The snapshot's difference storage (a reference). Immutable.
 * @events: The snapshot's event queue. Immutable.
 * @capacity: Device size in sectors at take. Immutable.
 * @chunk_shift: log2 of the chunk size in sectors. Immutable.
 * @chunk_count: Number of chunks (the last may be partial). Immutable.
 * @chunk_map: Per chunk, the storage sector of its saved copy, or 0 when
 *	not saved (the storage never hands out sector 0). Written once, under
 *	the chunk's lock, after the copy is in the storage (release); read
 *	locklessly on the I/O path (acquire): a stale 0 only sends the bio to
 *	the worker, which re-checks under the lock.
 * @chunk_locks: Hashed chunk locks: held while a chunk is copied and while
 *	an image read of it is served, so a write to the original never lands
 *	while the image reads that chunk from the original.
 * @queue_lock: Guards @cow_queue, @cow_queued and @image_bios. Taken with
 *	interrupts disabled (bios may come from any context).
 * @cow_queue: Writes (struct cow_req) waiting for their chunks.
 * @cow_queued: Entries in @cow_queue.
 * @cow_wait: Writers waiting for room in @cow_queue.
 * @image_bios: Reads and writes of the image waiting for a worker.
 * @req_pool: struct cow_req reserve.
 * @nr_workers: Workers of each kind. Immutable.
 * @cow_workers: Copy-on-write workers.
 * @image_workers: Image workers.
 * @error: 0, or the first error; set once (cmpxchg). Non-zero means the
 *	image is corrupted: copies stop, image reads fail with EIO.
 * @stopping: Set at destroy: queued writes go through without copies.
 */
struct diff_area {
	dev_t dev_id;
	struct compat_bdev orig;
	struct diff_storage *storage;
	struct event_queue *events;
	sector_t capacity;
	unsigned int chunk_shift;
	unsigned long chunk_count;
	sector_t *chunk_map;
	struct mutex chunk_locks[DIFF_AREA_LOCKS];

	spinlock_t queue_lock;
	struct list_head cow_queue;
	unsigned int cow_queued;
	wait_queue_head_t cow_wait;
	struct bio_list image_bios;
	mempool_t *req_pool;

	unsigned int nr_workers;
	struct diff_area_worker cow_workers[DIFF_AREA_MAX_WORKERS];
	struct diff_area_worker image_workers[DIFF_AREA_MAX_WORKERS];

	int error;
	bool stopping;
};

int diff_area_wq_init(void);
void diff_area_wq_done(void);

/*
 * Makes the copy-on-write state of the device @dev_id (opened for reading
 * for the copies and the image). May sleep.
 */
struct diff_area *diff_area_new(dev_t dev_id, struct diff_storage *storage,
				struct event_queue *events);
/* Stops copy-on-write: queued writes pass without copies from now on. */
void diff_area_stop(struct diff_area *da);
/* Waits for the workers (after the tracker stopped calling us). */
void diff_area_flush(struct diff_area *da);
void diff_area_free(struct diff_area *da);

/* Marks the image corrupted (once) and queues a corrupted event. */
void diff_area_set_corrupted(struct diff_area *da, int err);
static inline bool diff_area_is_corrupted(struct diff_area *da)
{
	return READ_ONCE(da->error) != 0;
}

/* What diff_area_cow_bio() did with a write. */
enum diff_area_cow {
	DIFF_AREA_PASS,		/* nothing to copy: submit the write now */
	DIFF_AREA_HELD,		/* held; a worker submits it after the copy */
	DIFF_AREA_AGAIN,	/* would have to wait, and may not: nothing done */
};

/*
 * The I/O path (see snapshot_cow_bio()): the write @bio changes sectors
 * [@sector, @sector + @count) of the device. Holds it if a chunk it
 * touches is not copied yet. A writer that may block waits for room in the
 * bounded queue; one that may not (REQ_NOWAIT) gets DIFF_AREA_AGAIN when
 * the queue is full or no request can be allocated at once: a transient
 * shortage never marks the image corrupted.
 */
enum diff_area_cow diff_area_cow_bio(struct diff_area *da, struct bio *bio,
				     sector_t sector, sector_t count,
				     bool may_block);
/*
 * An image read, write or write-zeroes: queued to a worker. Writes land in
 * the difference storage only (see "Image writes" in diff_area.c).
 */
void diff_area_image_bio(struct diff_area *da, struct bio *bio);

#endif /* __BLKSNAP_DIFF_AREA_H */
