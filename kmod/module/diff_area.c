// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write of one device: the chunk table, the copies in flight, the
 * writes held until their chunks are in memory, and the image reads.
 *
 * A write to a chunk that is not saved yet is held (struct cow_req) while
 * the chunk is read from the device into a buffer (struct chunk_copy): the
 * read is submitted from the writer's own context, asynchronously, one per
 * chunk, so the chunks of one write are read in parallel. When the last
 * chunk a write waits for is in memory, one work item resubmits the write
 * past the filter; another saves the buffer to the difference storage
 * later, records where (chunk_table.h) and frees the buffer. Buffers come from
 * a bounded budget per device: writers wait for one (back-pressure).
 *
 * The point-in-time guarantee: an image read of a chunk that is neither
 * saved nor being copied reads the device, and registers itself on the
 * chunk (a struct chunk_copy with readers and no copy) for as long as it
 * does; a copy of that chunk releases its held writes only once those
 * reads have ended, so no write reaches the device under them. Such a read
 * is a clone of the image bio (its pages, no bounce buffer) sent to the
 * device asynchronously; its completion drops the registration, so the
 * image bio ends with its last clone. Image reads of a chunk whose copy is
 * in flight wait for it and copy from its buffer; of a saved chunk, read
 * the storage into the worker's buffer and copy from it.
 *
 * Image workers run on a workqueue of their own: an image write waits for
 * the release and store work of its chunk's copy, and were they on one
 * WQ_MEM_RECLAIM queue, its rescuer could take both and run the waiting
 * image work first, forever.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-diff-area: " fmt

#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/log2.h>
#include <linux/hash.h>
#include <linux/sched/mm.h>
#include <linux/highmem.h>
#include <blksnap.h>
#include "diff_area.h"
#include "diff_storage.h"
#include "event_queue.h"
#include "filter.h"
#include "snapshot_params.h"

/* Image workers' buffers, all together, per device. */
#define DIFF_AREA_BUF_BUDGET (4UL << 20)
/*
 * Copies allocated at take, and the least budget in chunks (the budget is
 * chunk_buffer_mib).
 */
#define DIFF_AREA_MIN_COPIES (2 * DIFF_AREA_MAX_WORKERS)

/**
 * struct cow_req - A write held until its chunks are in memory.
 * @link: In the waiters of the first struct chunk_copy of its range that
 *	has not released its writes (under &diff_area->copy_lock), or on a
 *	private list of the release work.
 * @bio: The write.
 * @sector: First sector, relative to the device.
 * @nr_sect: Sectors, clipped to the device.
 */
struct cow_req {
	struct list_head link;
	struct bio *bio;
	sector_t sector;
	sector_t nr_sect;
};

/* What a struct chunk_copy in &diff_area->copies is doing. */
enum chunk_copy_state {
	COPY_IDLE,	/* no copy: only image reads of the device (readers) */
	COPY_READING,	/* the read of the chunk from the device is in flight */
	COPY_IN_MEMORY,	/* the read ended (ok or @err): buf holds the chunk */
};

/**
 * struct chunk_copy - A chunk being copied, or read from the device by the
 *	image; with its buffer, it is the unit of the memory budget.
 *
 * Every field but @buf, @vecs and @da is under &diff_area->copy_lock, and
 * so is membership of the lists and the hash. In the hash from the first
 * reader or writer of the chunk until the copy is saved (or dropped), then
 * back on the free list once no image read copies from @buf.
 *
 * @hash: In &diff_area->copies while the chunk is copied or read.
 * @link: In &diff_area->free_copies, &diff_area->copy_done or
 *	&diff_area->store_queue, or empty.
 * @da: The owner. Immutable.
 * @idx: The chunk.
 * @state: See enum chunk_copy_state.
 * @readers: Image reads of the chunk from the device in flight: the held
 *	writes are released only once it is 0.
 * @users: Image reads copying from @buf.
 * @released: The held writes were released (once, after the read ended
 *	and with no readers); a write arriving later need not wait for it.
 * @hashed: In &diff_area->copies.
 * @err: The read's error, or 0.
 * @waiters: Held writes (struct cow_req) waiting for this chunk.
 * @buf: The chunk's buffer. Immutable.
 * @bio: The read from the device (its bvecs are @vecs).
 * @vecs: The read's bvecs, one per page of @buf.
 */
struct chunk_copy {
	struct hlist_node hash;
	struct list_head link;
	struct diff_area *da;
	unsigned long idx;
	enum chunk_copy_state state;
	unsigned int readers;
	unsigned int users;
	bool released;
	bool hashed;
	int err;
	struct list_head waiters;
	struct cow_buf *buf;
	struct bio bio;
	struct bio_vec vecs[];
};

/**
 * struct image_clone - An image read of a chunk from the device: a clone of
 *	the image bio for the piece in that chunk.
 * @da: The owner.
 * @c: The chunk's struct chunk_copy, on which the read is a reader.
 * @parent: The image bio; one of its remaining counts is ours.
 * @bio: The clone. Last: the bio set allocates the rest in front of it.
 */
struct image_clone {
	struct diff_area *da;
	struct chunk_copy *c;
	struct bio *parent;
	struct bio bio;
};

static struct kmem_cache *cow_req_cache;
/*
 * Release and store work; WQ_MEM_RECLAIM: writeback waits on them. Bound
 * (per CPU): a read's completion releases its writes on its own CPU.
 */
static struct workqueue_struct *cow_wq;
/*
 * Image work, apart from cow_wq: it waits for cow_wq's work (see the
 * header); WQ_MEM_RECLAIM, as a file system on the image writes back.
 */
static struct workqueue_struct *image_wq;
/* The clones of image reads (struct image_clone). */
static struct bio_set image_bioset;

int diff_area_wq_init(void)
{
	int err = -ENOMEM;

	cow_req_cache = KMEM_CACHE(cow_req, 0);
	if (!cow_req_cache)
		return -ENOMEM;
	cow_wq = alloc_workqueue("blksnap-cow",
				 COMPAT_WQ_PERCPU | WQ_MEM_RECLAIM, 0);
	if (!cow_wq)
		goto fail_cache;
	image_wq = alloc_workqueue("blksnap-image",
				   COMPAT_WQ_PERCPU | WQ_MEM_RECLAIM, 0);
	if (!image_wq)
		goto fail_cow;
	err = bioset_init(&image_bioset, BIO_POOL_SIZE,
			  offsetof(struct image_clone, bio), 0);
	if (err)
		goto fail_image;
	return 0;
fail_image:
	destroy_workqueue(image_wq);
fail_cow:
	destroy_workqueue(cow_wq);
fail_cache:
	kmem_cache_destroy(cow_req_cache);
	return err;
}

void diff_area_wq_done(void)
{
	bioset_exit(&image_bioset);
	destroy_workqueue(image_wq);
	destroy_workqueue(cow_wq);
	kmem_cache_destroy(cow_req_cache);
}

static inline sector_t chunk_sectors(struct diff_area *da)
{
	return (sector_t)1 << da->chunk_shift;
}

static inline struct mutex *chunk_lock(struct diff_area *da,
				       unsigned long idx)
{
	return &da->chunk_locks[idx % DIFF_AREA_LOCKS];
}

void diff_area_set_corrupted(struct diff_area *da, int err)
{
	struct blksnap_event_corrupted ev = {
		.dev_id_mj = MAJOR(da->dev_id),
		.dev_id_mn = MINOR(da->dev_id),
		.err_code = err,
	};

	if (cmpxchg(&da->error, 0, err) != 0)
		return;
	pr_err("snapshot of [%u:%u] corrupted: %d\n", MAJOR(da->dev_id),
	       MINOR(da->dev_id), err);
	event_gen(da->events, blksnap_event_code_corrupted, &ev, sizeof(ev));
	wake_up_all(&da->cow_wait);
	wake_up_all(&da->copy_wait);
}

static inline bool diff_area_done(struct diff_area *da)
{
	return READ_ONCE(da->error) || READ_ONCE(da->stopping);
}

/* ---------------------------------------------------------------------- */
/* Copies in flight                                                       */
/* ---------------------------------------------------------------------- */

static struct chunk_copy *chunk_copy_alloc(struct diff_area *da)
{
	size_t bytes = (size_t)chunk_sectors(da) << SECTOR_SHIFT;
	unsigned int nr_pages = DIV_ROUND_UP(bytes, PAGE_SIZE);
	struct chunk_copy *c;

	c = kzalloc(struct_size(c, vecs, nr_pages), GFP_KERNEL);
	if (!c)
		return NULL;
	c->buf = cow_buf_alloc(bytes);
	if (!c->buf) {
		kfree(c);
		return NULL;
	}
	c->da = da;
	INIT_LIST_HEAD(&c->waiters);
	return c;
}

static void chunk_copy_free(struct chunk_copy *c)
{
	cow_buf_free(c->buf);
	kfree(c);
}

static struct hlist_head *copy_bucket(struct diff_area *da, unsigned long idx)
{
	return &da->copies[hash_long(idx, DIFF_AREA_COPY_HASH_BITS)];
}

/* The copy of chunk @idx, or NULL. Under copy_lock. */
static struct chunk_copy *copy_find(struct diff_area *da, unsigned long idx)
{
	struct chunk_copy *c;

	hlist_for_each_entry(c, copy_bucket(da, idx), hash)
		if (c->idx == idx)
			return c;
	return NULL;
}

/* A free copy set up for chunk @idx and hashed, or NULL. Under copy_lock. */
static struct chunk_copy *copy_get(struct diff_area *da, unsigned long idx)
{
	struct chunk_copy *c;

	if (list_empty(&da->free_copies))
		return NULL;
	c = list_first_entry(&da->free_copies, struct chunk_copy, link);
	list_del_init(&c->link);
	da->nr_free--;
	c->idx = idx;
	c->state = COPY_IDLE;
	c->readers = 0;
	c->users = 0;
	c->released = false;
	c->err = 0;
	c->hashed = true;
	hlist_add_head(&c->hash, copy_bucket(da, idx));
	return c;
}

/*
 * Takes @c out of the hash (the chunk is saved, or its copy dropped) and
 * frees it once no image read copies from it. Under copy_lock.
 */
static void copy_unhash(struct diff_area *da, struct chunk_copy *c)
{
	if (c->hashed) {
		hlist_del(&c->hash);
		c->hashed = false;
	}
	if (!c->users && !c->readers) {
		list_add(&c->link, &da->free_copies);
		da->nr_free++;
		wake_up_all(&da->copy_wait);
	}
}

/* Called when a free copy may be lacking. May sleep. */
static void copy_grow_or_wait(struct diff_area *da)
{
	unsigned int noio = memalloc_noio_save();
	struct chunk_copy *c = NULL;
	unsigned long flags;
	bool grow;

	spin_lock_irqsave(&da->copy_lock, flags);
	grow = da->nr_copies < da->max_copies;
	if (grow)
		da->nr_copies++;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	if (grow)
		c = chunk_copy_alloc(da);
	memalloc_noio_restore(noio);

	spin_lock_irqsave(&da->copy_lock, flags);
	if (c) {
		list_add(&c->link, &da->free_copies);
		da->nr_free++;
	} else if (grow) {
		da->nr_copies--;
	}
	spin_unlock_irqrestore(&da->copy_lock, flags);
	if (!c)
		wait_event(da->copy_wait,
			   READ_ONCE(da->nr_free) || diff_area_done(da));
}

static void copy_read_end_io(struct bio *bio)
{
	struct chunk_copy *c = container_of(bio, struct chunk_copy, bio);
	struct diff_area *da = c->da;
	int err = blk_status_to_errno(bio->bi_status);
	unsigned long flags;

	bio_uninit(bio);
	invalidate_kernel_vmap_range(c->buf->data, c->buf->size);
	/*
	 * Everything under the lock: diff_area_flush() takes it to see the
	 * copies idle, so the diff area outlives this function.
	 */
	spin_lock_irqsave(&da->copy_lock, flags);
	c->err = err;
	c->state = COPY_IN_MEMORY;
	list_add_tail(&c->link, &da->copy_done);
	queue_work(cow_wq, &da->release_work);
	wake_up_all(&da->copy_wait);
	spin_unlock_irqrestore(&da->copy_lock, flags);
}

/*
 * Starts the copy of @c's chunk: marks it reading (under copy_lock) and
 * adds it to @start, whose reads copy_submit() submits after the lock.
 */
static void copy_begin(struct chunk_copy *c, struct list_head *start)
{
	c->state = COPY_READING;
	list_add_tail(&c->link, start);
}

/* Submits the reads of the copies on @start (from copy_begin()). */
static void copy_submit(struct diff_area *da, struct list_head *start)
{
	struct chunk_copy *c, *n;

	list_for_each_entry_safe(c, n, start, link) {
		sector_t first = (sector_t)c->idx << da->chunk_shift;
		size_t len = (size_t)min_t(sector_t, chunk_sectors(da),
					   da->capacity - first) << SECTOR_SHIFT;
		size_t added = 0;
		unsigned int i;

		list_del_init(&c->link);
		compat_bio_init(&c->bio, da->orig.bdev, c->vecs,
				c->buf->nr_pages, REQ_OP_READ);
		c->bio.bi_iter.bi_sector = first;
		c->bio.bi_end_io = copy_read_end_io;
		for (i = 0; added < len; i++) {
			unsigned int bytes = min_t(size_t, len - added,
						   PAGE_SIZE);

			/* One page per vec: as many vecs as pages. */
			__bio_add_page(&c->bio, c->buf->bvec[i].bv_page, bytes,
				       0);
			added += bytes;
		}
		/* Past the filter; from a submitter, queued on its list. */
		filter_submit_bio_noacct(&c->bio);
	}
}

/*
 * Starts the copy of every chunk of [@first, @last] that is neither saved
 * nor being copied. With @all, starts none unless there are buffers for
 * all. Returns the number of chunks that still need a buffer. Under
 * copy_lock.
 */
static unsigned long copy_start_range(struct diff_area *da,
				      unsigned long first, unsigned long last,
				      bool all, struct list_head *start)
{
	unsigned long idx, needed = 0;
	struct chunk_copy *c;

	if (all) {
		for (idx = first; idx <= last; idx++)
			if (!chunk_table_get(&da->chunks, idx) && !copy_find(da, idx))
				needed++;
		if (needed > da->nr_free)
			return needed;
		needed = 0;
	}
	for (idx = first; idx <= last; idx++) {
		if (chunk_table_get(&da->chunks, idx))
			continue;
		c = copy_find(da, idx);
		if (!c)
			c = copy_get(da, idx);
		if (!c)
			needed++;
		else if (c->state == COPY_IDLE)
			copy_begin(c, start);
	}
	return needed;
}

/*
 * Holds @req on the first chunk of its range whose copy has not released
 * its writes. Returns false when there is none: the write may go. Under
 * copy_lock.
 */
static bool copy_hold(struct diff_area *da, struct cow_req *req)
{
	unsigned long idx = req->sector >> da->chunk_shift;
	unsigned long last = (req->sector + req->nr_sect - 1) >>
			     da->chunk_shift;
	struct chunk_copy *c;

	for (; idx <= last; idx++) {
		c = copy_find(da, idx);
		if (c && !c->released) {
			list_add_tail(&req->link, &c->waiters);
			return true;
		}
	}
	return false;
}

static void cow_req_release(struct diff_area *da, struct cow_req *req)
{
	unsigned long flags;

	/* Past the filter: the tracker saw this write already. */
	filter_submit_bio_noacct(req->bio);
	mempool_free(req, da->req_pool);
	spin_lock_irqsave(&da->copy_lock, flags);
	da->cow_queued--;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	wake_up(&da->cow_wait);
}

/*
 * The reads that ended: releases the writes held for them (each goes on
 * once no chunk of its range is still being read) and queues the chunks to
 * be saved. A copy with image reads of the device in flight waits for the
 * last of them, which queues it here again.
 */
static void diff_area_release_work(struct work_struct *work)
{
	struct diff_area *da = container_of(work, struct diff_area,
					    release_work);
	struct cow_req *req, *n;
	struct chunk_copy *c;
	unsigned long flags;
	unsigned long idx;
	LIST_HEAD(held);
	int err;

	for (;;) {
		spin_lock_irqsave(&da->copy_lock, flags);
		if (list_empty(&da->copy_done)) {
			spin_unlock_irqrestore(&da->copy_lock, flags);
			break;
		}
		c = list_first_entry(&da->copy_done, struct chunk_copy, link);
		list_del_init(&c->link);
		if (c->readers) {
			spin_unlock_irqrestore(&da->copy_lock, flags);
			continue;
		}
		c->released = true;
		list_splice_init(&c->waiters, &held);
		idx = c->idx;
		err = c->err;
		if (err) {
			copy_unhash(da, c);
		} else {
			list_add_tail(&c->link, &da->store_queue);
			queue_work(cow_wq, &da->store_work);
		}
		spin_unlock_irqrestore(&da->copy_lock, flags);

		if (err) {
			pr_err("reading chunk %lu of [%u:%u] failed: %d\n",
			       idx, MAJOR(da->dev_id), MINOR(da->dev_id), err);
			diff_area_set_corrupted(da, err);
		}
		list_for_each_entry_safe(req, n, &held, link) {
			list_del_init(&req->link);
			spin_lock_irqsave(&da->copy_lock, flags);
			if (copy_hold(da, req))
				req = NULL;
			spin_unlock_irqrestore(&da->copy_lock, flags);
			if (req)
				cow_req_release(da, req);
		}
		cond_resched();
	}
}

/* Saves @c's chunk to the storage. May sleep. */
static int copy_store(struct diff_area *da, struct chunk_copy *c,
		      sector_t *where)
{
	sector_t first = (sector_t)c->idx << da->chunk_shift;
	sector_t nr = min_t(sector_t, chunk_sectors(da), da->capacity - first);
	size_t bytes = chunk_sectors(da) << SECTOR_SHIFT;
	int err;

	err = diff_storage_alloc(da->storage, chunk_sectors(da), where);
	if (err)
		return err;
	if (nr < chunk_sectors(da))
		memset(c->buf->data + (nr << SECTOR_SHIFT), 0,
		       bytes - (nr << SECTOR_SHIFT));
	err = diff_storage_rw(da->storage, true, *where, c->buf, 0, bytes);
	if (err)
		pr_err("saving chunk %lu of [%u:%u] failed: %d\n", c->idx,
		       MAJOR(da->dev_id), MINOR(da->dev_id), err);
	return err;
}

static void diff_area_store_work(struct work_struct *work)
{
	struct diff_area *da = container_of(work, struct diff_area,
					    store_work);
	unsigned int noio = memalloc_noio_save();
	unsigned int local_throttle = current->flags & PF_LOCAL_THROTTLE;
	struct chunk_copy *c;
	unsigned long flags;
	sector_t where = 0;
	int err;

	/*
	 * Buffered storage writes (no O_DIRECT, or a file system that falls
	 * back to buffered I/O) must not wait in balance_dirty_pages() for
	 * dirty pages of the snapshotted device: their writeback waits for
	 * held writes. As loop does, be throttled by our own dirty pages only.
	 */
	current->flags |= PF_LOCAL_THROTTLE;
	for (;;) {
		spin_lock_irqsave(&da->copy_lock, flags);
		if (list_empty(&da->store_queue)) {
			spin_unlock_irqrestore(&da->copy_lock, flags);
			break;
		}
		c = list_first_entry(&da->store_queue, struct chunk_copy, link);
		list_del_init(&c->link);
		spin_unlock_irqrestore(&da->copy_lock, flags);

		/* Going away or corrupted: nobody reads the copy again. */
		err = diff_area_done(da) ? -ECANCELED :
		      chunk_table_prepare(&da->chunks, c->idx, GFP_NOIO);
		if (!err)
			err = copy_store(da, c, &where);

		spin_lock_irqsave(&da->copy_lock, flags);
		if (!err) {
			/* Publish once the copy is in the storage. */
			chunk_table_set(&da->chunks, c->idx, where);
		}
		copy_unhash(da, c);
		wake_up_all(&da->copy_wait);
		spin_unlock_irqrestore(&da->copy_lock, flags);
		if (err && err != -ECANCELED)
			diff_area_set_corrupted(da, err);
		cond_resched();
	}
	current->flags = (current->flags & ~PF_LOCAL_THROTTLE) | local_throttle;
	memalloc_noio_restore(noio);
}

static bool diff_area_room(struct diff_area *da)
{
	return READ_ONCE(da->cow_queued) < chunk_maximum_in_queue ||
	       diff_area_done(da);
}

enum diff_area_cow diff_area_cow_bio(struct diff_area *da, struct bio *bio,
				     sector_t sector, sector_t count,
				     bool may_block)
{
	/*
	 * A writer whose own bios wait on current->bio_list (the reads it
	 * starts among them) must not wait for buffers those bios free.
	 */
	bool may_wait = may_block && !current->bio_list;
	sector_t end = sector + count;
	unsigned long first, idx, last, needed;
	struct cow_req *req;
	unsigned long flags;
	bool held;
	LIST_HEAD(start);

	if (diff_area_done(da))
		return DIFF_AREA_PASS;
	if (end > da->capacity)
		end = da->capacity;
	if (sector >= end)
		return DIFF_AREA_PASS;

	first = sector >> da->chunk_shift;
	last = (end - 1) >> da->chunk_shift;
	for (idx = first; idx <= last; idx++) {
		/* Lockless: pairs with the release in diff_area_store_work(). */
		if (!chunk_table_get(&da->chunks, idx))
			break;
	}
	if (idx > last)
		return DIFF_AREA_PASS;	/* every chunk saved: no need to wait */

	if (may_wait) {
		/* Bounded: the writer waits, memory does not grow. */
		wait_event(da->cow_wait, diff_area_room(da));
		req = mempool_alloc(da->req_pool, GFP_NOIO);
	} else {
		if (!diff_area_room(da))
			return DIFF_AREA_AGAIN;
		req = mempool_alloc(da->req_pool, GFP_NOWAIT);
		if (!req)
			return DIFF_AREA_AGAIN;
	}
	INIT_LIST_HEAD(&req->link);
	req->bio = bio;
	req->sector = sector;
	req->nr_sect = end - sector;

	for (;;) {
		spin_lock_irqsave(&da->copy_lock, flags);
		if (diff_area_done(da)) {
			spin_unlock_irqrestore(&da->copy_lock, flags);
			mempool_free(req, da->req_pool);
			return DIFF_AREA_PASS;
		}
		/* One that may not wait starts all its copies, or none. */
		needed = copy_start_range(da, first, last, !may_wait, &start);
		if (!needed)
			break;
		spin_unlock_irqrestore(&da->copy_lock, flags);
		if (!may_wait) {
			mempool_free(req, da->req_pool);
			return DIFF_AREA_AGAIN;
		}
		copy_submit(da, &start);
		copy_grow_or_wait(da);
	}
	held = copy_hold(da, req);
	if (held)
		da->cow_queued++;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	copy_submit(da, &start);
	if (held)
		return DIFF_AREA_HELD;
	mempool_free(req, da->req_pool);
	return DIFF_AREA_PASS;
}

static void copy_to_bio(struct bio *bio, struct bvec_iter *it,
			const void *src, size_t len)
{
	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, *it);
		unsigned int n = min_t(size_t, bv.bv_len, len);

		bv.bv_len = n;
		memcpy_to_bvec(&bv, src);
		src += n;
		len -= n;
		bio_advance_iter_single(bio, it, n);
	}
}

/* How an image read serves one chunk (see diff_area_image_read_chunk()). */
enum image_source {
	IMAGE_FROM_STORAGE,	/* the saved copy */
	IMAGE_FROM_MEMORY,	/* the buffer of the copy in flight */
	IMAGE_FROM_DEVICE,	/* the device, as a reader of the chunk */
	IMAGE_WAIT,		/* a copy is reading the chunk: wait for it */
	IMAGE_NO_COPY,		/* no free struct chunk_copy: wait for one */
};

/*
 * Where to read chunk @idx from, registering as a reader or a user of its
 * struct chunk_copy (*@cp) for the two sources that need one.
 */
static enum image_source image_source(struct diff_area *da, unsigned long idx,
				      sector_t *where, struct chunk_copy **cp)
{
	enum image_source src = IMAGE_FROM_DEVICE;
	struct chunk_copy *c;
	unsigned long flags;

	spin_lock_irqsave(&da->copy_lock, flags);
	*where = chunk_table_get(&da->chunks, idx);
	c = copy_find(da, idx);
	if (*where) {
		src = IMAGE_FROM_STORAGE;
	} else if (!c) {
		c = copy_get(da, idx);
		if (c) {
			c->readers++;
			da->image_reads++;
		} else {
			src = IMAGE_NO_COPY;
		}
	} else if (c->state == COPY_IDLE) {
		c->readers++;
		da->image_reads++;
	} else if (c->state == COPY_READING) {
		src = IMAGE_WAIT;
	} else {
		c->users++;
		src = IMAGE_FROM_MEMORY;
	}
	*cp = c;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	return src;
}

/*
 * The end of an image read of @c's chunk as reader or user. Any context:
 * a reader's ends in its clone's completion. The diff area may go once
 * the lock is dropped.
 */
static void image_source_put(struct diff_area *da, struct chunk_copy *c,
			     bool reader)
{
	unsigned long flags;

	spin_lock_irqsave(&da->copy_lock, flags);
	if (reader) {
		c->readers--;
		/* diff_area_flush_image() waits for the last. */
		if (!--da->image_reads)
			wake_up_all(&da->copy_wait);
	} else {
		c->users--;
	}
	if (!c->readers && !c->users) {
		if (!c->hashed || c->state == COPY_IDLE) {
			copy_unhash(da, c);
		} else if (c->state == COPY_IN_MEMORY && !c->released &&
			   list_empty(&c->link)) {
			/* The copy waited for us to release its writes. */
			list_add_tail(&c->link, &da->copy_done);
			queue_work(cow_wq, &da->release_work);
		}
	}
	spin_unlock_irqrestore(&da->copy_lock, flags);
}

/* Whether chunk @idx has a copy reading it from the device. */
static bool copy_reading(struct diff_area *da, unsigned long idx)
{
	struct chunk_copy *c;
	unsigned long flags;
	bool reading;

	spin_lock_irqsave(&da->copy_lock, flags);
	c = copy_find(da, idx);
	reading = c && c->state == COPY_READING;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	return reading;
}

static void image_clone_end_io(struct bio *bio)
{
	struct image_clone *ic = container_of(bio, struct image_clone, bio);
	struct diff_area *da = ic->da;
	struct bio *parent = ic->parent;
	struct chunk_copy *c = ic->c;
	blk_status_t status = bio->bi_status;

	/*
	 * Once the image is corrupted (overflow, detach), writes skip
	 * copy-on-write and wait for no reader: one may have landed under
	 * this read. Decide before the reader goes.
	 */
	if (!status && READ_ONCE(da->error))
		status = BLK_STS_IOERR;
	bio_put(bio);
	/* As __bio_chain_endio(): the first error wins, unlocked. */
	if (status && !parent->bi_status)
		parent->bi_status = status;
	bio_endio(parent);
	/* Last: the diff area (and the image) may go after it. */
	image_source_put(da, c, true);
}

/*
 * Reads @nr sectors at @sector of the device into the image bio @parent at
 * @it, asynchronously, as the reader of @c it registered as: a clone of
 * @parent for those sectors, sent past the filter. @it is advanced.
 */
static void image_clone_submit(struct diff_area *da, struct chunk_copy *c,
			       struct bio *parent, struct bvec_iter *it,
			       sector_t sector, sector_t nr)
{
	struct image_clone *ic;
	struct bio *clone;

	/* From our own bio set, by a worker: waits, never fails. */
	clone = compat_bio_alloc_clone(da->orig.bdev, parent, GFP_NOIO,
				       &image_bioset);
	ic = container_of(clone, struct image_clone, bio);
	ic->da = da;
	ic->c = c;
	ic->parent = parent;
	clone->bi_iter = *it;
	clone->bi_iter.bi_sector = sector;
	clone->bi_iter.bi_size = nr << SECTOR_SHIFT;
	clone->bi_end_io = image_clone_end_io;
	bio_advance_iter(parent, it, nr << SECTOR_SHIFT);
	/* Ended by the clone's completion, or by the worker's bio_endio(). */
	bio_inc_remaining(parent);
	filter_submit_bio_noacct(clone);
}

/*
 * Reads @nr sectors at @in_chunk of chunk @idx into the bio at @it: from
 * the chunk's saved copy, its copy in memory, or the device while it has
 * neither (as a reader of the chunk until the read completes: a copy holds
 * its writes until then; the read from the device may still be in flight
 * on return). May sleep.
 */
static int diff_area_image_read_chunk(struct diff_area *da,
				      struct cow_buf *buf, unsigned long idx,
				      sector_t in_chunk, sector_t nr,
				      struct bio *bio, struct bvec_iter *it)
{
	size_t from = in_chunk << SECTOR_SHIFT;
	struct chunk_copy *c;
	const void *src;
	sector_t where;
	int err = 0;

	for (;;) {
		if (READ_ONCE(da->error))
			return -EIO;
		switch (image_source(da, idx, &where, &c)) {
		case IMAGE_WAIT:
			wait_event(da->copy_wait, !copy_reading(da, idx));
			continue;
		case IMAGE_NO_COPY:
			copy_grow_or_wait(da);
			continue;
		case IMAGE_FROM_STORAGE: {
			size_t a = round_down(from, PAGE_SIZE);
			size_t b = round_up((in_chunk + nr) << SECTOR_SHIFT,
					    PAGE_SIZE);
			struct mutex *lock = chunk_lock(da, idx);

			/* An image write may be changing the copy. */
			mutex_lock(lock);
			err = diff_storage_rw(da->storage, false,
					      where + (a >> SECTOR_SHIFT), buf,
					      a, b - a);
			mutex_unlock(lock);
			src = buf->data + from;
			break;
		}
		case IMAGE_FROM_MEMORY:
			err = c->err ? -EIO : 0;
			if (!err)
				copy_to_bio(bio, it, c->buf->data + from,
					    nr << SECTOR_SHIFT);
			image_source_put(da, c, false);
			return err;
		case IMAGE_FROM_DEVICE:
			image_clone_submit(da, c, bio, it,
					   ((sector_t)idx << da->chunk_shift) +
					   in_chunk, nr);
			return 0;
		}
		break;
	}
	if (!err)
		copy_to_bio(bio, it, src, nr << SECTOR_SHIFT);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Image writes                                                           */
/* ---------------------------------------------------------------------- */

/*
 * A write to the image lands in its chunk's copy in the difference storage,
 * never on the original. A chunk not saved yet is saved first, by the same
 * copy a write to the original starts (or joins it), and the image write
 * waits until the copy is in the storage: so the chunk's first copy is
 * always the original's data as at the take, and a later write to the
 * original finds the chunk saved and never copies over what the image
 * wrote. The image's data then goes into
 * the saved copy under the chunk's lock, which image reads take too: pages
 * the write covers only partly are read from the storage first.
 *
 * Storage cost: a chunk for every chunk the image writes to that the
 * original had not made saved (as a write to the original would); nothing
 * more for a chunk already saved. Kept apart from the copy-on-write and the
 * image reads so that either can be rewritten alone.
 */

static void copy_from_bio(struct bio *bio, struct bvec_iter *it, void *dst,
			  size_t len)
{
	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, *it);
		unsigned int n = min_t(size_t, bv.bv_len, len);

		bv.bv_len = n;
		memcpy_from_bvec(dst, &bv);
		dst += n;
		len -= n;
		bio_advance_iter_single(bio, it, n);
	}
}

/* Whether chunk @idx is saved, the image corrupted, or no copy in flight. */
static bool copy_settled(struct diff_area *da, unsigned long idx)
{
	struct chunk_copy *c;
	unsigned long flags;
	bool settled;

	spin_lock_irqsave(&da->copy_lock, flags);
	c = copy_find(da, idx);
	settled = chunk_table_get(&da->chunks, idx) || diff_area_done(da) || !c ||
		  c->state == COPY_IDLE;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	return settled;
}

/*
 * Saves chunk @idx unless it is saved: starts its copy (or joins the one
 * in flight) and waits until it is in the storage. May sleep. Returns its
 * storage sector, or 0 when the image is corrupted or going away.
 */
static sector_t diff_area_save_chunk(struct diff_area *da, unsigned long idx)
{
	unsigned long flags, needed;
	sector_t where;
	LIST_HEAD(start);

	for (;;) {
		spin_lock_irqsave(&da->copy_lock, flags);
		where = chunk_table_get(&da->chunks, idx);
		if (where || diff_area_done(da)) {
			spin_unlock_irqrestore(&da->copy_lock, flags);
			return diff_area_done(da) ? 0 : where;
		}
		needed = copy_start_range(da, idx, idx, false, &start);
		spin_unlock_irqrestore(&da->copy_lock, flags);
		copy_submit(da, &start);
		if (needed)
			copy_grow_or_wait(da);
		else
			wait_event(da->copy_wait, copy_settled(da, idx));
	}
}

/*
 * Writes @nr sectors at @in_chunk of chunk @idx into its saved copy: the
 * bio's data at @it, or zeroes when @it is NULL. May sleep.
 */
static int diff_area_image_write_chunk(struct diff_area *da,
				       struct cow_buf *buf, unsigned long idx,
				       sector_t in_chunk, sector_t nr,
				       struct bio *bio, struct bvec_iter *it)
{
	size_t from = in_chunk << SECTOR_SHIFT;
	size_t to = (in_chunk + nr) << SECTOR_SHIFT;
	size_t a = round_down(from, PAGE_SIZE), b = round_up(to, PAGE_SIZE);
	struct mutex *lock = chunk_lock(da, idx);
	sector_t where;
	int err;

	/* Not saved: the image is corrupted or going away. */
	if (!diff_area_save_chunk(da, idx))
		return -EIO;
	mutex_lock(lock);
	where = chunk_table_get(&da->chunks, idx);
	if (READ_ONCE(da->error) || !where) {
		err = -EIO;
		goto out;
	}
	if ((from | to) & ~PAGE_MASK) {
		err = diff_storage_rw(da->storage, false,
				      where + (a >> SECTOR_SHIFT), buf, a,
				      b - a);
		if (err)
			goto out;
	}
	if (it)
		copy_from_bio(bio, it, buf->data + from, to - from);
	else
		memset(buf->data + from, 0, to - from);
	err = diff_storage_rw(da->storage, true, where + (a >> SECTOR_SHIFT),
			      buf, a, b - a);
	if (err) {
		pr_err("writing chunk %lu of the image of [%u:%u] failed: %d\n",
		       idx, MAJOR(da->dev_id), MINOR(da->dev_id), err);
		diff_area_set_corrupted(da, err);
	}
out:
	mutex_unlock(lock);
	return err;
}

/*
 * Serves one image read, write or write-zeroes, chunk by chunk: a request
 * spanning chunks takes each chunk's lock in turn, never two at once. May
 * sleep.
 */
static void diff_area_image_rw(struct diff_area *da, struct cow_buf *buf,
			       struct bio *bio)
{
	struct bvec_iter it = bio->bi_iter;
	bool write = op_is_write(bio_op(bio));
	bool zeroes = bio_op(bio) == REQ_OP_WRITE_ZEROES;
	sector_t pos = it.bi_sector;
	sector_t end = pos + (it.bi_size >> SECTOR_SHIFT);
	int err = 0;

	struct blk_plug plug;

	if (end > da->capacity)
		err = -EIO;
	/* Clones of adjacent chunks may merge on the way to the device. */
	blk_start_plug(&plug);
	while (!err && pos < end) {
		unsigned long idx = pos >> da->chunk_shift;
		sector_t in_chunk = pos - ((sector_t)idx << da->chunk_shift);
		sector_t nr = min_t(sector_t, end - pos,
				    chunk_sectors(da) - in_chunk);

		if (!write)
			err = diff_area_image_read_chunk(da, buf, idx, in_chunk,
							 nr, bio, &it);
		else
			err = diff_area_image_write_chunk(da, buf, idx,
							  in_chunk, nr, bio,
							  zeroes ? NULL : &it);
		if (!err)
			pos += nr;
	}
	blk_finish_plug(&plug);
	if (err) {
		pr_debug("image %s of [%u:%u] at %llu failed: %d\n",
			 write ? "write" : "read", MAJOR(da->dev_id),
			 MINOR(da->dev_id), (unsigned long long)pos, err);
		bio->bi_status = BLK_STS_IOERR;
	}
	bio_endio(bio);
}

static void diff_area_image_work(struct work_struct *work)
{
	struct diff_area_worker *w = container_of(work,
						  struct diff_area_worker,
						  work);
	struct diff_area *da = w->da;
	unsigned int noio = memalloc_noio_save();
	unsigned long flags;
	struct bio *bio;

	for (;;) {
		spin_lock_irqsave(&da->copy_lock, flags);
		bio = bio_list_pop(&da->image_bios);
		spin_unlock_irqrestore(&da->copy_lock, flags);
		if (!bio)
			break;
		diff_area_image_rw(da, w->buf, bio);
		cond_resched();
	}
	memalloc_noio_restore(noio);
}

void diff_area_image_bio(struct diff_area *da, struct bio *bio)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&da->copy_lock, flags);
	bio_list_add(&da->image_bios, bio);
	spin_unlock_irqrestore(&da->copy_lock, flags);
	for (i = 0; i < da->nr_workers; i++)
		queue_work(image_wq, &da->image_workers[i].work);
}

static unsigned int diff_area_chunk_shift(struct block_device *bdev,
					  sector_t capacity)
{
	unsigned int shift = chunk_minimum_shift;
	unsigned int io_min = max_t(unsigned int, bdev_io_min(bdev),
				    bdev_logical_block_size(bdev));

	if (io_min > (1U << shift))
		shift = min_t(unsigned int, order_base_2(io_min),
			      chunk_maximum_shift);
	while (shift < chunk_maximum_shift &&
	       ((u64)capacity >> (shift - SECTOR_SHIFT)) >
	       (1ULL << chunk_maximum_count_shift))
		shift++;
	return shift - SECTOR_SHIFT;
}

struct diff_area *diff_area_new(dev_t dev_id, struct diff_storage *storage,
				struct event_queue *events)
{
	struct diff_area *da;
	size_t chunk_bytes;
	unsigned int i;
	int err;

	might_sleep();
	da = kzalloc(sizeof(*da), GFP_KERNEL);
	if (!da)
		return ERR_PTR(-ENOMEM);
	da->dev_id = dev_id;
	da->events = events;
	for (i = 0; i < DIFF_AREA_LOCKS; i++)
		mutex_init(&da->chunk_locks[i]);
	spin_lock_init(&da->copy_lock);
	for (i = 0; i < ARRAY_SIZE(da->copies); i++)
		INIT_HLIST_HEAD(&da->copies[i]);
	INIT_LIST_HEAD(&da->free_copies);
	INIT_LIST_HEAD(&da->copy_done);
	INIT_LIST_HEAD(&da->store_queue);
	INIT_WORK(&da->release_work, diff_area_release_work);
	INIT_WORK(&da->store_work, diff_area_store_work);
	init_waitqueue_head(&da->copy_wait);
	init_waitqueue_head(&da->cow_wait);
	bio_list_init(&da->image_bios);
	for (i = 0; i < DIFF_AREA_MAX_WORKERS; i++) {
		da->image_workers[i].da = da;
		INIT_WORK(&da->image_workers[i].work, diff_area_image_work);
	}

	err = compat_bdev_open(&da->orig, da->dev_id);
	if (err)
		goto fail;
	diff_storage_get(storage);
	da->storage = storage;

	da->capacity = bdev_nr_sectors(da->orig.bdev);
	if (!da->capacity) {
		err = -ENODEV;
		goto fail;
	}
	da->chunk_shift = diff_area_chunk_shift(da->orig.bdev, da->capacity);
	da->chunk_count = DIV_ROUND_UP_SECTOR_T(da->capacity,
						chunk_sectors(da));
	err = chunk_table_init(&da->chunks, da->chunk_count);
	if (err)
		goto fail;
	da->req_pool = mempool_create_slab_pool(16, cow_req_cache);
	if (!da->req_pool) {
		err = -ENOMEM;
		goto fail;
	}

	chunk_bytes = (size_t)chunk_sectors(da) << SECTOR_SHIFT;
	da->max_copies = max_t(unsigned long,
			       ((unsigned long)chunk_buffer_mib << 20) /
			       chunk_bytes, DIFF_AREA_MIN_COPIES);
	for (i = 0; i < DIFF_AREA_MIN_COPIES; i++) {
		struct chunk_copy *c = chunk_copy_alloc(da);

		if (!c) {
			err = -ENOMEM;
			goto fail;
		}
		list_add(&c->link, &da->free_copies);
		da->nr_copies++;
		da->nr_free++;
	}
	da->nr_workers = clamp_t(unsigned long,
				 DIFF_AREA_BUF_BUDGET / chunk_bytes, 1,
				 DIFF_AREA_MAX_WORKERS);
	for (i = 0; i < da->nr_workers; i++) {
		da->image_workers[i].buf = cow_buf_alloc(chunk_bytes);
		if (!da->image_workers[i].buf) {
			err = -ENOMEM;
			goto fail;
		}
	}
	pr_info("[%u:%u]: %llu sectors, chunk %llu sectors, %lu chunks\n",
		MAJOR(da->dev_id), MINOR(da->dev_id),
		(unsigned long long)da->capacity,
		(unsigned long long)chunk_sectors(da), da->chunk_count);
	return da;
fail:
	diff_area_free(da);
	return ERR_PTR(err);
}

void diff_area_stop(struct diff_area *da)
{
	WRITE_ONCE(da->stopping, true);
	wake_up_all(&da->cow_wait);
	wake_up_all(&da->copy_wait);
}

/* No image read of the device in flight. */
static bool diff_area_no_image_reads(struct diff_area *da)
{
	unsigned long flags;
	bool none;

	spin_lock_irqsave(&da->copy_lock, flags);
	none = !da->image_reads;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	return none;
}

void diff_area_flush_image(struct diff_area *da)
{
	unsigned int i;

	for (i = 0; i < da->nr_workers; i++)
		flush_work(&da->image_workers[i].work);
	/* The workers' clones end the image bios they were cut from. */
	wait_event(da->copy_wait, diff_area_no_image_reads(da));
}

/* No copy in flight: every struct chunk_copy is free. */
static bool diff_area_idle(struct diff_area *da)
{
	unsigned long flags;
	bool idle;

	spin_lock_irqsave(&da->copy_lock, flags);
	idle = da->nr_free == da->nr_copies;
	spin_unlock_irqrestore(&da->copy_lock, flags);
	return idle;
}

void diff_area_flush(struct diff_area *da)
{
	diff_area_flush_image(da);
	if (!READ_ONCE(da->stopping))
		return;
	/*
	 * Stopped: no copy starts. Those in flight end (their reads complete,
	 * the store drops them), and their held writes go on.
	 */
	wait_event(da->copy_wait, diff_area_idle(da));
	flush_work(&da->release_work);
	flush_work(&da->store_work);
}

void diff_area_free(struct diff_area *da)
{
	struct chunk_copy *c, *n;
	unsigned int i;

	if (!da)
		return;
	if (da->nr_copies) {
		WRITE_ONCE(da->stopping, true);
		diff_area_flush(da);
	}
	WARN_ON(da->cow_queued);
	WARN_ON(!bio_list_empty(&da->image_bios));
	WARN_ON(da->nr_free != da->nr_copies);
	list_for_each_entry_safe(c, n, &da->free_copies, link)
		chunk_copy_free(c);
	for (i = 0; i < DIFF_AREA_MAX_WORKERS; i++)
		cow_buf_free(da->image_workers[i].buf);
	mempool_destroy(da->req_pool);
	chunk_table_free(&da->chunks);
	diff_storage_put(da->storage);
	if (da->orig.bdev)
		compat_bdev_close(&da->orig);
	kfree(da);
}
