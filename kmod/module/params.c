// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters of the tracker. All are read-only at runtime (0444):
 * they are checked once at load and then read without locking.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/blkdev.h>
#include "params.h"

/*
 * The smallest tracking block, log2 bytes. 64 KiB by default: smaller
 * blocks make incremental backups finer but the map bigger. At least one
 * page (below that the map only grows), at most 2^30.
 */
unsigned int tracking_block_minimum_shift = 16;
module_param(tracking_block_minimum_shift, uint, 0444);
MODULE_PARM_DESC(tracking_block_minimum_shift,
		 "Smallest CBT block, log2 bytes (default 16: 64 KiB)");

/*
 * The block size doubles until the map has at most this many blocks (one
 * byte each, two maps per device), unless tracking_block_maximum_shift is
 * reached first. At least 1, at most 2^30 (1 GiB per map).
 */
unsigned int tracking_block_maximum_count = 2097152;
module_param(tracking_block_maximum_count, uint, 0444);
MODULE_PARM_DESC(tracking_block_maximum_count,
		 "Most CBT blocks per device before the block grows (default 2097152)");

/*
 * The largest tracking block, log2 bytes. Past it the map may hold more
 * than tracking_block_maximum_count blocks. Raised to at least the
 * minimum; at most 2^30.
 */
unsigned int tracking_block_maximum_shift = 26;
module_param(tracking_block_maximum_shift, uint, 0444);
MODULE_PARM_DESC(tracking_block_maximum_shift,
		 "Largest CBT block, log2 bytes (default 26: 64 MiB)");

/*
 * Answer BLKFILTER_ATTACH/DETACH/CTL on block-device fds (ioctl_hook.c).
 * Off, the per-device requests go through the control device only: for a
 * kernel where the ioctl entries cannot be hooked (another IPMODIFY user,
 * such as a live patch of blkdev_ioctl), and for the suites, which run the
 * library over both transports.
 */
bool blkfilter_ioctls = true;
module_param(blkfilter_ioctls, bool, 0444);
MODULE_PARM_DESC(blkfilter_ioctls,
		 "Answer BLKFILTER_* ioctls on block-device fds (default 1)");

/*
 * Testing only: answer IOCTL_BLKSNAP_TEST_CBT_SWITCH, which performs the
 * CBT switch of a snapshot take without a snapshot. Off in production.
 */
bool enable_test_ioctls;
module_param(enable_test_ioctls, bool, 0444);
MODULE_PARM_DESC(enable_test_ioctls,
		 "Answer the testing ioctls (default 0; for the test suites only)");

/*
 * Testing only, and only with enable_test_ioctls: a busy wait of this many
 * microseconds in the I/O path's tracker lookup, between finding a tracker
 * and taking a reference, so the suites can hold RCU readers open while a
 * tracker is detached. At most 10000.
 */
unsigned int test_lookup_delay_us;
module_param(test_lookup_delay_us, uint, 0444);
MODULE_PARM_DESC(test_lookup_delay_us,
		 "Delay in the tracker lookup, with enable_test_ioctls only (default 0; for the test suites only)");

#define TRACKING_SHIFT_MIN PAGE_SHIFT
#define TRACKING_SHIFT_MAX 30U
#define TRACKING_COUNT_MAX (1U << 30)

/**
 * param_clamp() - Bring one module parameter into [@lo, @hi], saying so.
 * @name: the parameter's name, for the log.
 * @value: the parameter.
 * @lo: the smallest valid value.
 * @hi: the largest valid value (@lo <= @hi).
 *
 * Shared by the tracker's and the snapshot code's parameter checks, which
 * run once at load. Logs "NAME V out of [LO, HI], using W" on a change.
 */
void param_clamp(const char *name, unsigned int *value, unsigned int lo,
		 unsigned int hi)
{
	unsigned int v = clamp_t(unsigned int, *value, lo, hi);

	if (v == *value)
		return;
	pr_warn("%s %u out of [%u, %u], using %u\n", name, *value, lo, hi, v);
	*value = v;
}

/**
 * params_validate() - Clamp the parameters to their valid ranges.
 *
 * Called once from module init, before anything reads them.
 */
void params_validate(void)
{
	param_clamp("tracking_block_minimum_shift",
		    &tracking_block_minimum_shift, TRACKING_SHIFT_MIN,
		    TRACKING_SHIFT_MAX);
	param_clamp("tracking_block_maximum_shift",
		    &tracking_block_maximum_shift, tracking_block_minimum_shift,
		    TRACKING_SHIFT_MAX);
	param_clamp("tracking_block_maximum_count",
		    &tracking_block_maximum_count, 1, TRACKING_COUNT_MAX);
	param_clamp("test_lookup_delay_us", &test_lookup_delay_us, 0, 10000);
}
