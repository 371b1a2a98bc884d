// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write of one device: the chunk table, the writes held until their
 * chunks are saved, and the image reads.
 *
 * A write to a chunk that is not saved yet is taken off the I/O path and
 * queued (struct cow_req); a worker copies each of its chunks from the
 * device to the difference storage, then resubmits the write past the
 * filter. Image reads are served by workers too: a saved chunk is read from
 * the storage, any other from the device, with the chunk's lock held so a
 * copy (and thus the held write) cannot overtake the read.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-diff-area: " fmt

#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/log2.h>
#include <linux/sched/mm.h>
#include <linux/highmem.h>
#include <linux/completion.h>
#include <blksnap.h>
#include "diff_area.h"
#include "diff_storage.h"
#include "event_queue.h"
#include "filter.h"
#include "snapshot_params.h"

/* Largest chunk buffers we allow per device, all workers together. */
#define DIFF_AREA_BUF_BUDGET (16UL << 20)

/**
 * struct cow_req - A write held until its chunks are saved.
 * @link: In &diff_area.cow_queue.
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

static struct kmem_cache *cow_req_cache;
/* Copy-on-write and image workers; WQ_MEM_RECLAIM: writeback waits on them. */
static struct workqueue_struct *cow_wq;

int diff_area_wq_init(void)
{
	cow_req_cache = KMEM_CACHE(cow_req, 0);
	if (!cow_req_cache)
		return -ENOMEM;
	cow_wq = alloc_workqueue("blksnap-cow", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!cow_wq) {
		kmem_cache_destroy(cow_req_cache);
		return -ENOMEM;
	}
	return 0;
}

void diff_area_wq_done(void)
{
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
}

static void orig_end_io(struct bio *bio)
{
	complete(bio->bi_private);
}

/*
 * Reads @len bytes at @sector of the device into @buf at @offset, past the
 * filter (the tracker's submit lock may be held for writing while we wait
 * here). May sleep.
 */
static int diff_area_read_orig(struct diff_area *da, sector_t sector,
			       struct cow_buf *buf, size_t offset, size_t len)
{
	size_t done = 0;
	int err = 0;

	if (WARN_ON_ONCE(offset & ~PAGE_MASK || offset + len > buf->size ||
			 len & (SECTOR_SIZE - 1)))
		return -EINVAL;

	while (done < len && !err) {
		DECLARE_COMPLETION_ONSTACK(wait);
		size_t piece = min_t(size_t, len - done,
				     (size_t)BIO_MAX_VECS << PAGE_SHIFT);
		unsigned int nr = DIV_ROUND_UP(piece, PAGE_SIZE);
		unsigned int pg = (offset + done) >> PAGE_SHIFT;
		size_t added = 0;
		struct bio *bio;
		unsigned int i;

		bio = compat_bio_alloc(da->orig.bdev, nr, REQ_OP_READ, GFP_NOIO);
		bio->bi_iter.bi_sector = sector + (done >> SECTOR_SHIFT);
		for (i = 0; i < nr; i++) {
			unsigned int bytes = min_t(size_t, piece - added,
						   PAGE_SIZE);

			if (bio_add_page(bio, buf->bvec[pg + i].bv_page, bytes,
					 0) != bytes) {
				err = -EIO;
				break;
			}
			added += bytes;
		}
		if (!err) {
			bio->bi_private = &wait;
			bio->bi_end_io = orig_end_io;
			filter_submit_bio_noacct(bio);
			wait_for_completion_io(&wait);
			err = blk_status_to_errno(bio->bi_status);
		}
		bio_put(bio);
		done += piece;
	}
	invalidate_kernel_vmap_range(buf->data + offset, len);
	return err;
}

/* Saves chunk @idx to the storage unless it is saved. May sleep. */
static int diff_area_copy_chunk(struct diff_area *da, struct cow_buf *buf,
				unsigned long idx)
{
	sector_t start = (sector_t)idx << da->chunk_shift;
	sector_t nr = min_t(sector_t, chunk_sectors(da), da->capacity - start);
	struct mutex *lock = chunk_lock(da, idx);
	sector_t where;
	int err = 0;

	/* Pairs with the release below: a saved chunk's copy is complete. */
	if (smp_load_acquire(&da->chunk_map[idx]))
		return 0;

	mutex_lock(lock);
	if (da->chunk_map[idx])
		goto out;
	err = READ_ONCE(da->error);
	if (err || READ_ONCE(da->stopping))
		goto out;

	err = diff_storage_alloc(da->storage, chunk_sectors(da), &where);
	if (err)
		goto out;
	err = diff_area_read_orig(da, start, buf, 0, nr << SECTOR_SHIFT);
	if (err) {
		pr_err("reading chunk %lu of [%u:%u] failed: %d\n", idx,
		       MAJOR(da->dev_id), MINOR(da->dev_id), err);
		goto out;
	}
	if (nr < chunk_sectors(da))
		memset(buf->data + (nr << SECTOR_SHIFT), 0,
		       (chunk_sectors(da) - nr) << SECTOR_SHIFT);
	err = diff_storage_rw(da->storage, true, where, buf, 0,
			      chunk_sectors(da) << SECTOR_SHIFT);
	if (err) {
		pr_err("saving chunk %lu of [%u:%u] failed: %d\n", idx,
		       MAJOR(da->dev_id), MINOR(da->dev_id), err);
		goto out;
	}
	/* Publish only after the copy is in the storage (see chunk_map). */
	smp_store_release(&da->chunk_map[idx], where);
out:
	mutex_unlock(lock);
	return err;
}

static struct cow_req *diff_area_cow_dequeue(struct diff_area *da)
{
	struct cow_req *req = NULL;
	unsigned long flags;

	spin_lock_irqsave(&da->queue_lock, flags);
	if (!list_empty(&da->cow_queue)) {
		req = list_first_entry(&da->cow_queue, struct cow_req, link);
		list_del(&req->link);
	}
	spin_unlock_irqrestore(&da->queue_lock, flags);
	return req;
}

static void diff_area_cow_work(struct work_struct *work)
{
	struct diff_area_worker *w = container_of(work,
						  struct diff_area_worker,
						  work);
	struct diff_area *da = w->da;
	unsigned int noio = memalloc_noio_save();
	unsigned int local_throttle = current->flags & PF_LOCAL_THROTTLE;
	struct cow_req *req;
	unsigned long flags;

	/*
	 * Buffered storage writes (no O_DIRECT, or a file system that falls
	 * back to buffered I/O) must not wait in balance_dirty_pages() for
	 * dirty pages of the snapshotted device: their writeback waits for
	 * this worker. As loop does, be throttled by our own dirty pages only.
	 */
	current->flags |= PF_LOCAL_THROTTLE;
	while ((req = diff_area_cow_dequeue(da))) {
		unsigned long idx = req->sector >> da->chunk_shift;
		unsigned long last = (req->sector + req->nr_sect - 1) >>
				     da->chunk_shift;

		for (; idx <= last; idx++) {
			int err = diff_area_copy_chunk(da, w->buf, idx);

			if (err) {
				diff_area_set_corrupted(da, err);
				break;
			}
		}
		/* Past the filter: the tracker saw this write already. */
		filter_submit_bio_noacct(req->bio);
		mempool_free(req, da->req_pool);

		spin_lock_irqsave(&da->queue_lock, flags);
		da->cow_queued--;
		spin_unlock_irqrestore(&da->queue_lock, flags);
		wake_up(&da->cow_wait);
		cond_resched();
	}
	current->flags = (current->flags & ~PF_LOCAL_THROTTLE) | local_throttle;
	memalloc_noio_restore(noio);
}

static void diff_area_kick(struct diff_area_worker *workers, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		queue_work(cow_wq, &workers[i].work);
}

static bool diff_area_room(struct diff_area *da)
{
	return READ_ONCE(da->cow_queued) < chunk_maximum_in_queue ||
	       READ_ONCE(da->error) || READ_ONCE(da->stopping);
}

enum diff_area_cow diff_area_cow_bio(struct diff_area *da, struct bio *bio,
				     sector_t sector, sector_t count,
				     bool may_block)
{
	sector_t end = sector + count;
	unsigned long idx, last;
	struct cow_req *req;
	unsigned long flags;

	if (READ_ONCE(da->error) || READ_ONCE(da->stopping))
		return DIFF_AREA_PASS;
	if (end > da->capacity)
		end = da->capacity;
	if (sector >= end)
		return DIFF_AREA_PASS;

	last = (end - 1) >> da->chunk_shift;
	/* Lockless: pairs with the release in diff_area_copy_chunk(). */
	for (idx = sector >> da->chunk_shift; idx <= last; idx++)
		if (!smp_load_acquire(&da->chunk_map[idx]))
			break;
	if (idx > last)
		return DIFF_AREA_PASS;	/* every chunk saved: no need to wait */

	if (may_block) {
		/* A bounded queue: the writer waits, memory does not grow. */
		wait_event(da->cow_wait, diff_area_room(da));
		if (READ_ONCE(da->error) || READ_ONCE(da->stopping))
			return DIFF_AREA_PASS;
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

	spin_lock_irqsave(&da->queue_lock, flags);
	list_add_tail(&req->link, &da->cow_queue);
	da->cow_queued++;
	spin_unlock_irqrestore(&da->queue_lock, flags);

	diff_area_kick(da->cow_workers, da->nr_workers);
	return DIFF_AREA_HELD;
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

/*
 * Reads @nr sectors at @in_chunk of chunk @idx into the bio at @it: from the
 * chunk's saved copy, or from the original while it has none. May sleep.
 */
static int diff_area_image_read_chunk(struct diff_area *da,
				      struct cow_buf *buf, unsigned long idx,
				      sector_t in_chunk, sector_t nr,
				      struct bio *bio, struct bvec_iter *it)
{
	struct mutex *lock = chunk_lock(da, idx);
	const void *src;
	sector_t where;
	int err;

	mutex_lock(lock);
	where = da->chunk_map[idx];
	if (READ_ONCE(da->error)) {
		err = -EIO;
	} else if (where) {
		size_t a = round_down(in_chunk << SECTOR_SHIFT, PAGE_SIZE);
		size_t b = round_up((in_chunk + nr) << SECTOR_SHIFT,
				    PAGE_SIZE);

		err = diff_storage_rw(da->storage, false,
				      where + (a >> SECTOR_SHIFT), buf, a,
				      b - a);
		src = buf->data + (in_chunk << SECTOR_SHIFT);
	} else {
		sector_t pos = ((sector_t)idx << da->chunk_shift) + in_chunk;

		err = diff_area_read_orig(da, pos, buf, 0, nr << SECTOR_SHIFT);
		src = buf->data;
		/*
		 * Once the image is corrupted (overflow, detach), writes
		 * skip copy-on-write and the chunk locks: one may have
		 * landed under this read. Decide after it.
		 */
		if (!err && READ_ONCE(da->error))
			err = -EIO;
	}
	mutex_unlock(lock);
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
 * diff_area_copy_chunk() a write to the original uses and under the same
 * chunk lock: so the chunk's first copy is always the original's data as
 * at the take, and a later write to the original finds the chunk saved and
 * never copies over what the image wrote. The image's data then goes into
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

	err = diff_area_copy_chunk(da, buf, idx);
	if (err) {
		diff_area_set_corrupted(da, err);
		return err;
	}
	mutex_lock(lock);
	where = da->chunk_map[idx];
	/* Not saved after a successful copy: the snapshot is going away. */
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

	if (end > da->capacity)
		err = -EIO;
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
		spin_lock_irqsave(&da->queue_lock, flags);
		bio = bio_list_pop(&da->image_bios);
		spin_unlock_irqrestore(&da->queue_lock, flags);
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

	spin_lock_irqsave(&da->queue_lock, flags);
	bio_list_add(&da->image_bios, bio);
	spin_unlock_irqrestore(&da->queue_lock, flags);
	diff_area_kick(da->image_workers, da->nr_workers);
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
	spin_lock_init(&da->queue_lock);
	INIT_LIST_HEAD(&da->cow_queue);
	init_waitqueue_head(&da->cow_wait);
	bio_list_init(&da->image_bios);
	for (i = 0; i < DIFF_AREA_MAX_WORKERS; i++) {
		da->cow_workers[i].da = da;
		INIT_WORK(&da->cow_workers[i].work, diff_area_cow_work);
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
	da->chunk_map = kvcalloc(da->chunk_count, sizeof(*da->chunk_map),
				 GFP_KERNEL);
	if (!da->chunk_map) {
		err = -ENOMEM;
		goto fail;
	}
	da->req_pool = mempool_create_slab_pool(16, cow_req_cache);
	if (!da->req_pool) {
		err = -ENOMEM;
		goto fail;
	}

	chunk_bytes = (size_t)chunk_sectors(da) << SECTOR_SHIFT;
	da->nr_workers = clamp_t(unsigned long,
				 DIFF_AREA_BUF_BUDGET / 2 / chunk_bytes, 1,
				 DIFF_AREA_MAX_WORKERS);
	for (i = 0; i < da->nr_workers; i++) {
		da->cow_workers[i].buf = cow_buf_alloc(chunk_bytes);
		da->image_workers[i].buf = cow_buf_alloc(chunk_bytes);
		if (!da->cow_workers[i].buf || !da->image_workers[i].buf) {
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
}

void diff_area_flush(struct diff_area *da)
{
	unsigned int i;

	for (i = 0; i < da->nr_workers; i++) {
		flush_work(&da->cow_workers[i].work);
		flush_work(&da->image_workers[i].work);
	}
}

void diff_area_free(struct diff_area *da)
{
	unsigned int i;

	if (!da)
		return;
	diff_area_flush(da);
	WARN_ON(!list_empty(&da->cow_queue));
	WARN_ON(!bio_list_empty(&da->image_bios));
	for (i = 0; i < DIFF_AREA_MAX_WORKERS; i++) {
		cow_buf_free(da->cow_workers[i].buf);
		cow_buf_free(da->image_workers[i].buf);
	}
	mempool_destroy(da->req_pool);
	kvfree(da->chunk_map);
	diff_storage_put(da->storage);
	if (da->orig.bdev)
		compat_bdev_close(&da->orig);
	kfree(da);
}
