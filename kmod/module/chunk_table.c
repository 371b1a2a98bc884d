// SPDX-License-Identifier: GPL-2.0
/*
 * The sparse table of saved chunks (chunk_table.h says what it holds and
 * its rules).
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-chunk-table: " fmt

#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/atomic.h>
#include "chunk_table.h"

int chunk_table_init(struct chunk_table *t, unsigned long count)
{
	t->nr_leaves = DIV_ROUND_UP(count, CHUNK_TABLE_LEAF_ENTRIES);
	t->leaves = kvcalloc(t->nr_leaves, sizeof(*t->leaves), GFP_KERNEL);
	return t->leaves ? 0 : -ENOMEM;
}

void chunk_table_free(struct chunk_table *t)
{
	unsigned long i;

	if (!t->leaves)
		return;
	for (i = 0; i < t->nr_leaves; i++)
		kfree(t->leaves[i]);
	kvfree(t->leaves);
	t->leaves = NULL;
}

/*
 * Makes sure the leaf holding chunk @idx exists, so that chunk_table_set()
 * cannot fail under a spinlock. May sleep with a sleeping @gfp. Returns 0
 * or -ENOMEM.
 */
int chunk_table_prepare(struct chunk_table *t, unsigned long idx, gfp_t gfp)
{
	sector_t **slot = &t->leaves[idx / CHUNK_TABLE_LEAF_ENTRIES];
	sector_t *leaf;

	if (smp_load_acquire(slot))
		return 0;
	leaf = kzalloc(PAGE_SIZE, gfp);
	if (!leaf)
		return -ENOMEM;
	/* Two preparers of one leaf: the first wins, the other frees its own. */
	if (cmpxchg_release(slot, NULL, leaf))
		kfree(leaf);
	return 0;
}

/*
 * Records that chunk @idx is saved at storage sector @where (not 0), for
 * lockless readers (release). Its leaf must have been prepared.
 */
void chunk_table_set(struct chunk_table *t, unsigned long idx,
		     sector_t where)
{
	sector_t *leaf = t->leaves[idx / CHUNK_TABLE_LEAF_ENTRIES];

	smp_store_release(&leaf[idx % CHUNK_TABLE_LEAF_ENTRIES], where);
}
