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
#include "chunk_table.h"

struct diff_storage;
struct event_queue;
struct cow_buf;
struct diff_area;

/* Chunk locks are hashed: two chunks may share one, which only serialises. */
#define DIFF_AREA_LOCKS 64
#define DIFF_AREA_MAX_WORKERS 4
/* Buckets of &diff_area.copies (chunks being copied or read by the image). */
#define DIFF_AREA_COPY_HASH_BITS 8

/**
 * struct diff_area_worker - An image worker and its private chunk buffer.
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
 * @chunks: Per chunk, the storage sector of its saved copy, or 0 when not
 *	saved (chunk_table.h). Written once, under @copy_lock, after the copy
 *	is in the storage (release), in the same critical section that drops
 *	the chunk's struct chunk_copy; read locklessly on the I/O path
 *	(acquire): a stale 0 only sends the write to the locked path, which
 *	checks again.
 * @chunk_locks: Hashed chunk locks of the image: an image write of a saved
 *	chunk holds it across its read-modify-write of the copy, an image read
 *	of a saved chunk across its read of the copy.
 * @copy_lock: Guards @copies, every struct chunk_copy in it or on the lists
 *	below, @free_copies, @nr_copies, @nr_free, @copy_done, @store_queue,
 *	@cow_queued, @image_bios and @image_reads. Taken with interrupts
 *	disabled: the read of a chunk completes in any context.
 * @copies: Chunks being copied or read from the device by the image, by
 *	chunk index (struct chunk_copy, at most one per chunk).
 * @free_copies: Idle struct chunk_copy, each with its chunk buffer.
 * @nr_copies: struct chunk_copy allocated (free or not), at most
 *	@max_copies: the bounded memory of the copies in flight.
 * @nr_free: Entries in @free_copies.
 * @max_copies: The budget, in chunks. Immutable.
 * @copy_done: Copies whose read of the device ended, for @release_work.
 * @store_queue: Copies in memory, for @store_work to save.
 * @release_work: Releases the writes held for the copies in @copy_done.
 * @store_work: Saves the copies in @store_queue to the storage.
 * @copy_wait: Woken when a copy reaches memory, is saved or dropped, and
 *	when a struct chunk_copy is freed: image reads and writes, writers
 *	waiting for a buffer, and diff_area_flush() wait here.
 * @cow_queued: Writes held (struct cow_req) on this device.
 * @cow_wait: Writers waiting for @cow_queued to drop.
 * @image_bios: Reads and writes of the image waiting for a worker.
 * @image_reads: Image reads of the device in flight (clones of image bios,
 *	each a reader of its chunk); woken on @copy_wait when it drops to 0.
 * @req_pool: struct cow_req reserve.
 * @nr_workers: Image workers. Immutable.
 * @image_workers: Image workers.
 * @error: 0, or the first error; set once (cmpxchg). Non-zero means the
 *	image is corrupted: copies stop, image reads fail with EIO.
 * @stopping: Set at destroy: writes go through without copies.
 */
struct diff_area {
	dev_t dev_id;
	struct compat_bdev orig;
	struct diff_storage *storage;
	struct event_queue *events;
	sector_t capacity;
	unsigned int chunk_shift;
	unsigned long chunk_count;
	struct chunk_table chunks;
	struct mutex chunk_locks[DIFF_AREA_LOCKS];

	spinlock_t copy_lock;
	struct hlist_head copies[1 << DIFF_AREA_COPY_HASH_BITS];
	struct list_head free_copies;
	unsigned int nr_copies;
	unsigned int nr_free;
	unsigned int max_copies;
	struct list_head copy_done;
	struct list_head store_queue;
	struct work_struct release_work;
	struct work_struct store_work;
	wait_queue_head_t copy_wait;
	unsigned int cow_queued;
	wait_queue_head_t cow_wait;
	struct bio_list image_bios;
	unsigned int image_reads;
	mempool_t *req_pool;

	unsigned int nr_workers;
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
/*
 * Waits for the image workers and the reads of the device they started
 * (after the image stopped calling us): every image bio has ended.
 */
void diff_area_flush_image(struct diff_area *da);
/*
 * Waits for the image workers and, once stopped, for every copy in flight
 * and every held write (after the tracker stopped calling us).
 */
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
	DIFF_AREA_HELD,		/* held; submitted once its chunks are in memory */
	DIFF_AREA_AGAIN,	/* would have to wait, and may not: nothing done */
};

/*
 * The I/O path (see snapshot_cow_bio()): the write @bio changes sectors
 * [@sector, @sector + @count) of the device. Holds it if a chunk it
 * touches is not copied yet, and starts the reads of those chunks; the
 * write goes on once they are in memory. A writer that may block (and has
 * no bios of its own queued on current->bio_list) waits for room: held
 * writes and chunk buffers are bounded. One that may not gets
 * DIFF_AREA_AGAIN with nothing done when it would have to wait: a
 * transient shortage never marks the image corrupted.
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
