// SPDX-License-Identifier: GPL-2.0
/*
 * Difference storage: space for copied chunks, its growth, and the
 * synchronous chunk I/O helpers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-diff-storage: " fmt

#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/namei.h>
#include <linux/uio.h>
#include <linux/bio.h>
#include <linux/falloc.h>
#include <linux/sched/mm.h>
#include <linux/highmem.h>
#include <blksnap.h>
#include "diff_storage.h"
#include "event_queue.h"
#include "compat.h"
#include "snapshot_params.h"

/* Growth steps run here, outside the I/O path (see diff_storage_alloc). */
static struct workqueue_struct *grow_wq;

int diff_storage_wq_init(void)
{
	grow_wq = alloc_workqueue("blksnap-grow", WQ_UNBOUND | WQ_MEM_RECLAIM,
				  0);
	return grow_wq ? 0 : -ENOMEM;
}

void diff_storage_wq_done(void)
{
	destroy_workqueue(grow_wq);
}

static void diff_storage_report_no_space(struct diff_storage *ds,
					 sector_t requested)
{
	struct blksnap_event_no_space ev = { .requested_nr_sect = requested };

	pr_warn("difference storage full: %llu of %llu sectors used, %llu more needed\n",
		(unsigned long long)ds->filled, (unsigned long long)ds->limit,
		(unsigned long long)requested);
	event_gen(ds->events, blksnap_event_code_no_space, &ev, sizeof(ev));
}

/* Grows the file by one step (at most to the limit). Process context. */
static int diff_storage_grow(struct diff_storage *ds)
{
	sector_t cur, target;
	unsigned int noio;
	int err;

	spin_lock(&ds->lock);
	cur = ds->capacity;
	spin_unlock(&ds->lock);

	target = min_t(sector_t, cur + diff_storage_minimum, ds->limit);
	if (target <= cur)
		return -ENOSPC;

	noio = memalloc_noio_save();
	err = vfs_fallocate(ds->file, 0, (loff_t)cur << SECTOR_SHIFT,
			    (loff_t)(target - cur) << SECTOR_SHIFT);
	memalloc_noio_restore(noio);
	if (err) {
		pr_err("growing the difference storage to %llu sectors failed: %d\n",
		       (unsigned long long)target, err);
		return err;
	}

	spin_lock(&ds->lock);
	ds->capacity = target;
	spin_unlock(&ds->lock);
	pr_debug("difference storage grown to %llu sectors\n",
		 (unsigned long long)target);
	return 0;
}

static void diff_storage_grow_work(struct work_struct *work)
{
	struct diff_storage *ds = container_of(work, struct diff_storage,
					       grow_work);
	int err;

	err = diff_storage_grow(ds);

	spin_lock(&ds->lock);
	/* No more growth; what the file has is still used up first. */
	if (err && !ds->grow_error)
		ds->grow_error = err;
	ds->growing = false;
	spin_unlock(&ds->lock);
	wake_up_all(&ds->wq);
}

/* Can the storage still grow? Called with ds->lock held. */
static bool diff_storage_may_grow(struct diff_storage *ds)
{
	return ds->can_grow && !ds->grow_error && ds->capacity < ds->limit;
}

int diff_storage_alloc(struct diff_storage *ds, sector_t nr_sect,
		       sector_t *sector)
{
	bool queue = false, report = false;
	int err;

	might_sleep();
	spin_lock(&ds->lock);
	for (;;) {
		if (ds->error) {
			err = ds->error;
			break;
		}
		if (ds->filled + nr_sect <= ds->capacity) {
			*sector = ds->filled;
			ds->filled += nr_sect;
			if (!ds->growing && diff_storage_may_grow(ds) &&
			    ds->capacity - ds->filled <= diff_storage_minimum / 2) {
				ds->growing = true;
				queue = true;
			}
			err = 0;
			break;
		}
		if (diff_storage_may_grow(ds)) {
			ds->requested = nr_sect;
			if (!ds->growing) {
				ds->growing = true;
				queue_work(grow_wq, &ds->grow_work);
			}
			spin_unlock(&ds->lock);
			wait_event(ds->wq, !READ_ONCE(ds->growing));
			spin_lock(&ds->lock);
			continue;
		}
		/* Full: the limit, the device, or a growth step that failed. */
		ds->error = ds->grow_error ? ds->grow_error : -ENOSPC;
		ds->requested = nr_sect;
		report = ds->error == -ENOSPC;
		err = ds->error;
		break;
	}
	spin_unlock(&ds->lock);

	if (queue)
		queue_work(grow_wq, &ds->grow_work);
	if (report)
		diff_storage_report_no_space(ds, nr_sect);
	return err;
}

static struct file *diff_storage_open_file(const char *path, int flags)
{
	struct file *file;

	/* Direct I/O keeps the copies out of the page cache where it works. */
	file = filp_open(path, flags | O_DIRECT, 0600);
	if (IS_ERR(file) && PTR_ERR(file) == -EINVAL)
		file = filp_open(path, flags, 0600);
	return file;
}

struct diff_storage *diff_storage_open(const char *path, sector_t limit,
				       struct event_queue *events)
{
	struct diff_storage *ds;
	struct path p;
	struct inode *inode;
	umode_t mode;
	int flags, err;

	might_sleep();
	if (!limit)
		return ERR_PTR(-EINVAL);

	err = kern_path(path, LOOKUP_FOLLOW, &p);
	if (err)
		return ERR_PTR(err);
	mode = d_inode(p.dentry)->i_mode;
	path_put(&p);

	if (S_ISDIR(mode))
		flags = O_TMPFILE | O_RDWR | O_LARGEFILE;
	else if (S_ISREG(mode))
		flags = O_RDWR | O_LARGEFILE;
	else if (S_ISBLK(mode))
		flags = O_RDWR | O_LARGEFILE | O_EXCL;
	else
		return ERR_PTR(-EINVAL);

	ds = kzalloc(sizeof(*ds), GFP_KERNEL);
	if (!ds)
		return ERR_PTR(-ENOMEM);
	kref_init(&ds->kref);
	spin_lock_init(&ds->lock);
	init_waitqueue_head(&ds->wq);
	INIT_WORK(&ds->grow_work, diff_storage_grow_work);
	ds->events = events;
	ds->limit = limit;

	ds->file = diff_storage_open_file(path, flags);
	if (IS_ERR(ds->file)) {
		err = PTR_ERR(ds->file);
		pr_err("cannot open difference storage '%s': %d\n", path, err);
		goto err_free;
	}
	inode = file_inode(ds->file);

	if (S_ISBLK(mode)) {
		if (!S_ISBLK(inode->i_mode)) {
			err = -EINVAL;
			goto err_close;
		}
		ds->bdev = I_BDEV(ds->file->f_mapping->host);
		ds->can_grow = false;
		ds->capacity = min_t(sector_t, bdev_nr_sectors(ds->bdev),
				     limit);
	} else {
		sector_t cur;

		if (!S_ISREG(inode->i_mode)) {
			err = -EINVAL;
			goto err_close;
		}
		ds->bdev = inode->i_sb->s_bdev;
		ds->can_grow = true;
		/* Copies are device data; an O_TMPFILE file is made 0600. */
		if (inode->i_mode & 0077)
			pr_warn("difference storage '%s' is readable by others (mode %o): copies of the devices' data go there\n",
				path, inode->i_mode & 0777);
		cur = i_size_read(inode) >> SECTOR_SHIFT;
		ds->capacity = min_t(sector_t, cur, limit);
		if (ds->capacity <= diff_storage_minimum / 2 &&
		    ds->capacity < limit) {
			err = diff_storage_grow(ds);
			if (err)
				goto err_close;
		}
	}
	if (ds->capacity <= DIFF_STORAGE_SKIP_SECT) {
		pr_err("difference storage '%s' too small: %llu sectors\n",
		       path, (unsigned long long)ds->capacity);
		err = -ENOSPC;
		goto err_close;
	}
	ds->filled = DIFF_STORAGE_SKIP_SECT;
	pr_info("difference storage '%s': %llu sectors, limit %llu, %s\n",
		path, (unsigned long long)ds->capacity,
		(unsigned long long)limit,
		ds->can_grow ? "file" : "block device");
	return ds;

err_close:
	filp_close(ds->file, NULL);
err_free:
	kfree(ds);
	return ERR_PTR(err);
}

static void diff_storage_release(struct kref *kref)
{
	struct diff_storage *ds = container_of(kref, struct diff_storage,
					       kref);

	cancel_work_sync(&ds->grow_work);
	filp_close(ds->file, NULL);
	kfree(ds);
}

void diff_storage_put(struct diff_storage *ds)
{
	if (ds)
		kref_put(&ds->kref, diff_storage_release);
}

struct cow_buf *cow_buf_alloc(size_t size)
{
	struct cow_buf *buf;
	unsigned int i;

	size = PAGE_ALIGN(size);
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return NULL;
	buf->size = size;
	buf->nr_pages = size >> PAGE_SHIFT;
	buf->data = vmalloc(size);
	buf->bvec = kvcalloc(buf->nr_pages, sizeof(*buf->bvec), GFP_KERNEL);
	if (!buf->data || !buf->bvec) {
		cow_buf_free(buf);
		return NULL;
	}
	for (i = 0; i < buf->nr_pages; i++) {
		buf->bvec[i].bv_page =
			vmalloc_to_page(buf->data + ((size_t)i << PAGE_SHIFT));
		buf->bvec[i].bv_len = PAGE_SIZE;
		buf->bvec[i].bv_offset = 0;
	}
	return buf;
}

void cow_buf_free(struct cow_buf *buf)
{
	if (!buf)
		return;
	vfree(buf->data);
	kvfree(buf->bvec);
	kfree(buf);
}

int diff_storage_rw(struct diff_storage *ds, bool write, sector_t sector,
		    struct cow_buf *buf, size_t offset, size_t len)
{
	struct iov_iter iter;
	loff_t pos = (loff_t)sector << SECTOR_SHIFT;
	ssize_t ret;

	might_sleep();
	if (WARN_ON_ONCE(offset & ~PAGE_MASK || offset + len > buf->size))
		return -EINVAL;

	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST,
		      buf->bvec + (offset >> PAGE_SHIFT),
		      DIV_ROUND_UP(len, PAGE_SIZE), len);
	if (write) {
		flush_kernel_vmap_range(buf->data + offset, len);
		ret = compat_vfs_iter_write(ds->file, &iter, &pos);
	} else {
		ret = vfs_iter_read(ds->file, &iter, &pos, 0);
		invalidate_kernel_vmap_range(buf->data + offset, len);
	}
	if (ret < 0)
		return ret;
	return ret == len ? 0 : -EIO;
}
