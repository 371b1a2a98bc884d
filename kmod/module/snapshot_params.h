/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Module parameters of the snapshot code (copy-on-write chunks and the
 * difference storage). The tracker's parameters live in params.h.
 */
#ifndef __BLKSNAP_SNAPSHOT_PARAMS_H
#define __BLKSNAP_SNAPSHOT_PARAMS_H

extern unsigned int chunk_minimum_shift;
extern unsigned int chunk_maximum_count_shift;
extern unsigned int chunk_maximum_shift;
extern unsigned int chunk_maximum_in_queue;
extern unsigned int chunk_buffer_mib;
extern unsigned int diff_storage_minimum;

/* Validates and clamps the parameters; called once from snapshot_init(). */
void snapshot_params_check(void);

#endif /* __BLKSNAP_SNAPSHOT_PARAMS_H */
