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
#include "params.h"
#include "snapshot_params.h"

/*
 * The smallest copy-on-write chunk, log2 of bytes. Larger chunks mean fewer
 * copies but more data copied per first write, and more difference storage
 * per scattered 4 KiB write. Never below PAGE_SHIFT (the copy buffers are
 * pages); the device's minimum I/O size raises it per device. 64 KiB was
 * chosen by measurement (bench/vm/chunk_size.sh; docs/kernel-abi.md): against
 * 256 KiB, the same first-touch rate of random writes with a 31-36 % lower
 * p99, 3.7x less storage per scattered write and less memory; against
 * 16 KiB, a faster first touch.
 */
unsigned int chunk_minimum_shift = 16;
module_param(chunk_minimum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_minimum_shift,
		 "Smallest copy-on-write chunk, log2 bytes (default 16: 64 KiB)");

/*
 * A device has at most 2^chunk_maximum_count_shift chunks: the chunk size
 * doubles until the count fits (up to chunk_maximum_shift). Bounds the
 * per-device chunk table's directory (8 bytes per 512 chunks, allocated at
 * take; chunk_table.h).
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
 * Memory for the chunks being copied, per device, in MiB: a write waits
 * until the old data of its chunks is in memory, and is then released
 * while the chunks are saved to the difference storage. When it is used
 * up, writers wait (or get EAGAIN with REQ_NOWAIT). At least 8 chunks.
 */
unsigned int chunk_buffer_mib = 16;
module_param(chunk_buffer_mib, uint, 0444);
MODULE_PARM_DESC(chunk_buffer_mib,
		 "Memory for chunks being copied per device, MiB (default 16)");

/*
 * The step, in 512-byte sectors, by which a file difference storage grows;
 * growth starts when the free space falls to half of it.
 */
unsigned int diff_storage_minimum = 2097152;
module_param(diff_storage_minimum, uint, 0444);
MODULE_PARM_DESC(diff_storage_minimum,
		 "Difference storage growth step in sectors (default 2097152: 1 GiB)");

#define CHUNK_SHIFT_LIMIT 30
#define IN_QUEUE_LIMIT 65536
#define BUFFER_MIB_LIMIT 4096

/* Clamp one parameter, logging the change under the parameter's own name. */
#define CLAMP_PARAM(param, lo, hi) param_clamp(#param, &(param), lo, hi)

/**
 * snapshot_params_check() - Clamp the snapshot parameters at load.
 *
 * The chunk shifts stay within [PAGE_SHIFT, 30] with the maximum at least
 * the minimum; the count shift within [1, 40] (32 on 32-bit); the queue
 * within [1, 65536]; the chunk buffers within [1, 4096] MiB; the storage step is at least two of the smallest
 * chunks and a multiple of one.
 */
void snapshot_params_check(void)
{
	unsigned int count_limit = BITS_PER_LONG == 64 ? 40 : 32;
	unsigned int min_chunk_sect;

	CLAMP_PARAM(chunk_minimum_shift, PAGE_SHIFT, CHUNK_SHIFT_LIMIT);
	CLAMP_PARAM(chunk_maximum_shift, chunk_minimum_shift,
		    CHUNK_SHIFT_LIMIT);
	CLAMP_PARAM(chunk_maximum_count_shift, 1, count_limit);
	CLAMP_PARAM(chunk_maximum_in_queue, 1, IN_QUEUE_LIMIT);
	CLAMP_PARAM(chunk_buffer_mib, 1, BUFFER_MIB_LIMIT);

	min_chunk_sect = 1U << (chunk_minimum_shift - SECTOR_SHIFT);
	CLAMP_PARAM(diff_storage_minimum, 2 * min_chunk_sect,
		    round_down(UINT_MAX, min_chunk_sect));
	if (diff_storage_minimum & (min_chunk_sect - 1)) {
		unsigned int aligned = round_up(diff_storage_minimum,
						min_chunk_sect);

		pr_warn("diff_storage_minimum %u aligned to %u\n",
			diff_storage_minimum, aligned);
		diff_storage_minimum = aligned;
	}
}
