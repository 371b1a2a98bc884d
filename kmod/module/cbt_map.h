/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The change-block-tracking map of one tracked block device.
 */
#ifndef __BLKSNAP_CBT_MAP_H
#define __BLKSNAP_CBT_MAP_H

#include <linux/kref.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uuid.h>
#include <linux/blkdev.h>

/**
 * struct cbt_map - Change block tracking map: one byte per tracking block.
 * @kref: References. The tracker holds one; readers that use the map
 *	outside the tracker's submit lock take their own (cbt_map_get()).
 * @blk_size_shift: log2 of the tracking block size in bytes. Immutable.
 * @blk_count: Number of tracking blocks, the size of each map in bytes.
 *	Immutable.
 * @device_capacity: Device capacity in sectors when the map was made.
 *	Immutable: a resize makes a new map (at the next switch).
 * @lock: Guards every field below it. Taken with interrupts disabled
 *	because bios may be submitted from any context.
 * @write_map: Number of the snapshot "in progress" for each block: a write
 *	sets max(current, @snap_number_active).
 * @read_map: The copy of @write_map made at the last switch: what a
 *	backup reads.
 * @snap_number_active: Change number that writes record (1..255).
 * @snap_number_previous: Change number of the last switch (0..255),
 *	reported as changes_number.
 * @generation_id: Generation of the map; a new one means "back up in full".
 * @is_corrupted: A write fell outside the map; the map is reset at the next
 *	switch and cannot be read until then.
 *
 * The maps are allocated when the map is made (vzalloc, GFP_KERNEL, never
 * on the I/O path) and never resized.
 */
struct cbt_map {
	struct kref kref;
	unsigned int blk_size_shift;
	u32 blk_count;
	sector_t device_capacity;

	spinlock_t lock;
	u8 *write_map;
	u8 *read_map;
	u8 snap_number_active;
	u8 snap_number_previous;
	uuid_t generation_id;
	bool is_corrupted;
};

struct cbt_map *cbt_map_create(sector_t capacity, gfp_t gfp);
void cbt_map_destroy(struct kref *kref);

static inline void cbt_map_get(struct cbt_map *cbt_map)
{
	kref_get(&cbt_map->kref);
}

static inline void cbt_map_put(struct cbt_map *cbt_map)
{
	if (cbt_map)
		kref_put(&cbt_map->kref, cbt_map_destroy);
}

/* Mark a write of @count sectors at @sector in the write map. */
int cbt_map_set(struct cbt_map *cbt_map, sector_t sector, sector_t count);
/*
 * Mark both maps (write map: active number, read map: previous number), as
 * cbtdirty and writes to a writable snapshot image do. Returns -EINVAL if
 * the range is outside the map (nothing is marked) or the map is corrupted.
 */
int cbt_map_set_both(struct cbt_map *cbt_map, sector_t sector,
		     sector_t count);
/* True if [sector, sector + count) lies inside the map; never wraps. */
bool cbt_map_range_valid(struct cbt_map *cbt_map, sector_t sector,
			 sector_t count);
/* The switch a snapshot take performs (see docs/kernel-abi.md). */
void cbt_map_switch(struct cbt_map *cbt_map);
bool cbt_map_is_corrupted(struct cbt_map *cbt_map);

#endif /* __BLKSNAP_CBT_MAP_H */
