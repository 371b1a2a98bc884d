/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshot images: one read-only block device per device of a taken
 * snapshot, named "blksnap-<major>-<minor>" after the original.
 */
#ifndef __BLKSNAP_SNAPIMAGE_H
#define __BLKSNAP_SNAPIMAGE_H

struct diff_area;
struct gendisk;

/* Creates and adds the image disk of @da. May sleep. */
struct gendisk *snapimage_create(struct diff_area *da);
/*
 * Removes the disk: when it returns no new read reaches @da and the reads
 * queued before have been served. May sleep.
 */
void snapimage_destroy(struct gendisk *disk);

#endif /* __BLKSNAP_SNAPIMAGE_H */
