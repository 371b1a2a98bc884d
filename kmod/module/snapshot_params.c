// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters of the snapshot code. All are read-only (0444): the
 * copy-on-write code reads them without locks, so they are fixed at load,
 * validated and clamped once in snapshot_params_check().
 */
#define pr_fmt(fmt) KBUILD_MODNAME "-snapshot: " fmt

#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/blkdev.h>
#include "snapshot_params.h"

/*
 * The smallest copy-on-write chunk, log2 of bytes. Larger chunks mean fewer
 * copies but more data copied per first write. Never below PAGE_SHIFT (the
 * copy buffers are pages); the device's minimum I/O size raises it per
 * device.
 */
unsigned int chunk_minimum_shift = 18;
module_param(chunk_minimum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_minimum_shift,
		 "Smallest copy-on-write chunk, log2 bytes (default 18: 256 KiB)");

/*
 * A device has at most 2^chunk_maximum_count_shift chunks: the chunk size
 * doubles until the count fits (up to chunk_maximum_shift). Bounds the
 * per-device chunk table (8 bytes per chunk).
 */
unsigned int chunk_maximum_count_shift = 40;
module_param(chunk_maximum_count_shift, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_count_shift,
		 "At most 2^N chunks per device (default 40)");

/* The largest copy-on-write chunk, log2 of bytes. */
unsigned int chunk_maximum_shift = 26;
module_param(chunk_maximum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_shift,
		 "Largest copy-on-write chunk, log2 bytes (default 26: 64 MiB)");

/*
 * Writes held back waiting for their chunks to be copied, per device. When
 * reached, a writer that may sleep waits: memory stays bounded under a
 * write storm.
 */
unsigned int chunk_maximum_in_queue = 256;
module_param(chunk_maximum_in_queue, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_in_queue,
		 "Writes waiting for copy-on-write per device before writers wait (default 256)");

/*
 * The step, in 512-byte sectors, by which a file difference storage grows;
 * growth starts when the free space falls to half of it.
 */
unsigned int diff_storage_minimum = 2097152;
module_param(diff_storage_minimum, uint, 0444);
MODULE_PARM_DESC(diff_storage_minimum,
		 "Difference storage growth step in sectors (default 2097152: 1 GiB)");

#define CHUNK_SHIFT_LIMIT 30

void snapshot_params_check(void)
{
	unsigned int count_limit = BITS_PER_LONG == 64 ? 40 : 32;
	unsigned int min_chunk_sect;

	if (chunk_minimum_shift < PAGE_SHIFT) {
		pr_warn("chunk_minimum_shift %u raised to %u\n",
			chunk_minimum_shift, PAGE_SHIFT);
		chunk_minimum_shift = PAGE_SHIFT;
	}
	if (chunk_minimum_shift > CHUNK_SHIFT_LIMIT) {
		pr_warn("chunk_minimum_shift %u lowered to %u\n",
			chunk_minimum_shift, CHUNK_SHIFT_LIMIT);
		chunk_minimum_shift = CHUNK_SHIFT_LIMIT;
	}
	if (chunk_maximum_shift > CHUNK_SHIFT_LIMIT) {
		pr_warn("chunk_maximum_shift %u lowered to %u\n",
			chunk_maximum_shift, CHUNK_SHIFT_LIMIT);
		chunk_maximum_shift = CHUNK_SHIFT_LIMIT;
	}
	if (chunk_maximum_shift < chunk_minimum_shift) {
		pr_warn("chunk_maximum_shift %u raised to %u\n",
			chunk_maximum_shift, chunk_minimum_shift);
		chunk_maximum_shift = chunk_minimum_shift;
	}
	if (chunk_maximum_count_shift > count_limit) {
		pr_warn("chunk_maximum_count_shift %u lowered to %u\n",
			chunk_maximum_count_shift, count_limit);
		chunk_maximum_count_shift = count_limit;
	}
	if (chunk_maximum_count_shift < 1) {
		pr_warn("chunk_maximum_count_shift raised to 1\n");
		chunk_maximum_count_shift = 1;
	}
	if (chunk_maximum_in_queue < 1) {
		pr_warn("chunk_maximum_in_queue raised to 1\n");
		chunk_maximum_in_queue = 1;
	}
	if (chunk_maximum_in_queue > 65536) {
		pr_warn("chunk_maximum_in_queue %u lowered to 65536\n",
			chunk_maximum_in_queue);
		chunk_maximum_in_queue = 65536;
	}
	min_chunk_sect = 1U << (chunk_minimum_shift - SECTOR_SHIFT);
	if (diff_storage_minimum < 2 * min_chunk_sect) {
		pr_warn("diff_storage_minimum %u raised to %u\n",
			diff_storage_minimum, 2 * min_chunk_sect);
		diff_storage_minimum = 2 * min_chunk_sect;
	}
	if (diff_storage_minimum & (min_chunk_sect - 1)) {
		unsigned int aligned = round_up(diff_storage_minimum,
						min_chunk_sect);

		pr_warn("diff_storage_minimum %u aligned to %u\n",
			diff_storage_minimum, aligned);
		diff_storage_minimum = aligned;
	}
}
