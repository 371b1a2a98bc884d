/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshot images: one block device per device of a taken snapshot, named
 * "blksnap-<major>-<minor>" after the original. Writable: writes land in
 * the difference storage and mark both CBT maps of the original.
 */
#ifndef __BLKSNAP_SNAPIMAGE_H
#define __BLKSNAP_SNAPIMAGE_H

struct diff_area;
struct gendisk;
struct cbt_map;

/*
 * Creates and adds the image disk of @da; its writes mark @cbt_map (the
 * original's, of which the image keeps a reference). May sleep.
 */
struct gendisk *snapimage_create(struct diff_area *da,
				 struct cbt_map *cbt_map);
/*
 * Removes the disk: when it returns no new read or write reaches its diff
 * area and those queued before have been served. May sleep.
 */
void snapimage_destroy(struct gendisk *disk);

#endif /* __BLKSNAP_SNAPIMAGE_H */
