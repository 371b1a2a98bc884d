/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CHUNK_TABLE_H
#define __BLKSNAP_CHUNK_TABLE_H

#include <linux/types.h>
#include <linux/gfp.h>

/*
 * Where each chunk of a device has its saved copy in the difference
 * storage: a storage sector, or 0 while the chunk is not saved (the storage
 * never hands out sector 0).
 *
 * Sparse, two levels: a directory of pointers allocated at take (8 bytes
 * per CHUNK_TABLE_LEAF_ENTRIES chunks) and leaves of one page each,
 * allocated when the first chunk they cover is saved. A snapshot of a
 * large device that sees few writes costs a small directory, not 8 bytes
 * per chunk; a device written everywhere costs what a flat table would,
 * plus the directory.
 *
 * Concurrency: entries and leaf pointers go from 0 to their value once.
 * chunk_table_get() is lockless (acquire) and may run in any context;
 * chunk_table_prepare() may sleep; chunk_table_set() does not, and its
 * callers serialise sets of one entry (the diff_area's copy_lock).
 */
struct chunk_table {
	sector_t **leaves;
	unsigned long nr_leaves;
};

#define CHUNK_TABLE_LEAF_ENTRIES (PAGE_SIZE / sizeof(sector_t))

int chunk_table_init(struct chunk_table *t, unsigned long count);
void chunk_table_free(struct chunk_table *t);
int chunk_table_prepare(struct chunk_table *t, unsigned long idx, gfp_t gfp);
void chunk_table_set(struct chunk_table *t, unsigned long idx,
		     sector_t where);

/* The storage sector of chunk @idx's copy, or 0 when it is not saved. */
static inline sector_t chunk_table_get(const struct chunk_table *t,
				       unsigned long idx)
{
	/* Pairs with the releases in chunk_table_prepare() and _set(). */
	sector_t *leaf = smp_load_acquire(&t->leaves[idx /
						     CHUNK_TABLE_LEAF_ENTRIES]);

	return leaf ? smp_load_acquire(&leaf[idx % CHUNK_TABLE_LEAF_ENTRIES]) :
		      0;
}

#endif /* __BLKSNAP_CHUNK_TABLE_H */
