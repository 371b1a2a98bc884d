// SPDX-License-Identifier: GPL-2.0
/*
 * The CBT map: one byte per tracking block, in two copies.
 *
 * Writes raise a block's byte in the write map to the active change number.
 * A snapshot take switches: the read map becomes a copy of the write map and
 * the active number moves on. A backup reads the read map and copies the
 * blocks whose number is above the changes_number of its previous backup,
 * as long as the generation id has not changed.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/overflow.h>
#include "cbt_map.h"
#include "params.h"

static u64 blocks_for(sector_t capacity, unsigned int shift)
{
	unsigned int sect_shift = shift - SECTOR_SHIFT;

	return ((u64)capacity + (1ULL << sect_shift) - 1) >> sect_shift;
}

/**
 * cbt_map_create() - Make a map for a device of @capacity sectors.
 * @capacity: Device capacity in sectors, not zero.
 * @gfp: GFP_KERNEL, or GFP_NOIO where I/O to the device must not recurse.
 *
 * Picks the block size: the smallest power of two from
 * tracking_block_minimum_shift up that gives at most
 * tracking_block_maximum_count blocks, but no larger than
 * tracking_block_maximum_shift. Starts a new generation: previous number 0,
 * active number 1, maps zeroed. May sleep.
 *
 * Return: the map with one reference, or an ERR_PTR (-EINVAL for a zero
 * capacity, -EFBIG if the map would need more than 2^32 - 1 blocks,
 * -ENOMEM).
 */
struct cbt_map *cbt_map_create(sector_t capacity, gfp_t gfp)
{
	struct cbt_map *cbt_map;
	unsigned int shift = tracking_block_minimum_shift;
	u64 count;

	might_sleep();
	if (!capacity)
		return ERR_PTR(-EINVAL);

	count = blocks_for(capacity, shift);
	while (count > tracking_block_maximum_count &&
	       shift < tracking_block_maximum_shift) {
		shift++;
		count = blocks_for(capacity, shift);
	}
	if (count > U32_MAX)
		return ERR_PTR(-EFBIG);

	cbt_map = kzalloc(sizeof(*cbt_map), gfp);
	if (!cbt_map)
		return ERR_PTR(-ENOMEM);

	cbt_map->write_map = __vmalloc(count, gfp | __GFP_ZERO);
	cbt_map->read_map = __vmalloc(count, gfp | __GFP_ZERO);
	if (!cbt_map->write_map || !cbt_map->read_map) {
		vfree(cbt_map->write_map);
		vfree(cbt_map->read_map);
		kfree(cbt_map);
		return ERR_PTR(-ENOMEM);
	}

	kref_init(&cbt_map->kref);
	spin_lock_init(&cbt_map->lock);
	cbt_map->blk_size_shift = shift;
	cbt_map->blk_count = count;
	cbt_map->device_capacity = capacity;
	cbt_map->snap_number_previous = 0;
	cbt_map->snap_number_active = 1;
	uuid_gen(&cbt_map->generation_id);
	cbt_map->is_corrupted = false;
	return cbt_map;
}

/* kref release of a map. Any context but NMI (vfree defers if needed). */
void cbt_map_destroy(struct kref *kref)
{
	struct cbt_map *cbt_map = container_of(kref, struct cbt_map, kref);

	vfree(cbt_map->write_map);
	vfree(cbt_map->read_map);
	kfree(cbt_map);
}

bool cbt_map_range_valid(struct cbt_map *cbt_map, sector_t sector,
			 sector_t count)
{
	sector_t end;

	if (!count || check_add_overflow(sector, count, &end))
		return false;
	return end <= cbt_map->device_capacity;
}

/* Raise the bytes of the blocks in the (valid, non-empty) range. */
static void mark(struct cbt_map *cbt_map, u8 *map, sector_t sector,
		 sector_t count, u8 number)
{
	unsigned int sect_shift = cbt_map->blk_size_shift - SECTOR_SHIFT;
	u32 first = sector >> sect_shift;
	u32 last = (sector + count - 1) >> sect_shift;
	u32 i;

	lockdep_assert_held(&cbt_map->lock);
	for (i = first; i <= last; i++) {
		if (map[i] < number)
			map[i] = number;
	}
}

/**
 * cbt_map_set() - Record a write.
 * @cbt_map: The map.
 * @sector: First sector written.
 * @count: Sectors written (not zero).
 *
 * A write past the map (the device grew) marks the map corrupted: it gets
 * a new generation at the next switch. Any context.
 *
 * Return: 0, or -EINVAL if the map is (now) corrupted.
 */
int cbt_map_set(struct cbt_map *cbt_map, sector_t sector, sector_t count)
{
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&cbt_map->lock, flags);
	if (unlikely(cbt_map->is_corrupted)) {
		ret = -EINVAL;
	} else if (unlikely(!cbt_map_range_valid(cbt_map, sector, count))) {
		cbt_map->is_corrupted = true;
		ret = -EINVAL;
	} else {
		mark(cbt_map, cbt_map->write_map, sector, count,
		     cbt_map->snap_number_active);
	}
	spin_unlock_irqrestore(&cbt_map->lock, flags);
	if (ret == -EINVAL && count)
		pr_debug("write [%llu, +%llu) outside or on a corrupted map\n",
			 (unsigned long long)sector, (unsigned long long)count);
	return ret;
}

/**
 * cbt_map_set_both() - Mark a range as changed in both maps.
 * @cbt_map: The map.
 * @sector: First sector.
 * @count: Sectors (not zero).
 *
 * The write map gets the active number and the read map the previous one,
 * so the next backup copies the range whatever it compares with. A range
 * outside the map is refused without marking anything (the map is not
 * marked corrupted: this is a request, not a write). Any context.
 *
 * Return: 0, or -EINVAL (range outside the map, or map corrupted).
 */
int cbt_map_set_both(struct cbt_map *cbt_map, sector_t sector,
		     sector_t count)
{
	unsigned long flags;
	int ret = 0;

	if (!cbt_map_range_valid(cbt_map, sector, count))
		return -EINVAL;

	spin_lock_irqsave(&cbt_map->lock, flags);
	if (unlikely(cbt_map->is_corrupted)) {
		ret = -EINVAL;
	} else {
		mark(cbt_map, cbt_map->write_map, sector, count,
		     cbt_map->snap_number_active);
		mark(cbt_map, cbt_map->read_map, sector, count,
		     cbt_map->snap_number_previous);
	}
	spin_unlock_irqrestore(&cbt_map->lock, flags);
	return ret;
}

/**
 * cbt_map_switch() - The CBT switch of a snapshot take.
 * @cbt_map: The map (not corrupted: the caller re-creates a corrupted map).
 *
 * previous = active, active + 1. When active would reach 256 it restarts
 * at 1 with the write map zeroed and a new generation id; the read map is
 * then left as it was (a consumer sees the new generation and backs up in
 * full). Otherwise the read map becomes a copy of the write map.
 *
 * Called with the tracker's submit lock held for writing, so no write is
 * being marked. Any context.
 */
void cbt_map_switch(struct cbt_map *cbt_map)
{
	unsigned long flags;

	spin_lock_irqsave(&cbt_map->lock, flags);
	cbt_map->snap_number_previous = cbt_map->snap_number_active;
	if (cbt_map->snap_number_active == 255) {
		cbt_map->snap_number_active = 1;
		memset(cbt_map->write_map, 0, cbt_map->blk_count);
		uuid_gen(&cbt_map->generation_id);
	} else {
		cbt_map->snap_number_active++;
		memcpy(cbt_map->read_map, cbt_map->write_map,
		       cbt_map->blk_count);
	}
	spin_unlock_irqrestore(&cbt_map->lock, flags);
}

bool cbt_map_is_corrupted(struct cbt_map *cbt_map)
{
	unsigned long flags;
	bool ret;

	spin_lock_irqsave(&cbt_map->lock, flags);
	ret = cbt_map->is_corrupted;
	spin_unlock_irqrestore(&cbt_map->lock, flags);
	return ret;
}
