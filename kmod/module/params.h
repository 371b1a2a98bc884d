/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Module parameters. All are read-only (0444) and validated at load
 * (params_validate()), so they may be read without locking afterwards.
 */
#ifndef __BLKSNAP_PARAMS_H
#define __BLKSNAP_PARAMS_H

#include <linux/types.h>

extern unsigned int tracking_block_minimum_shift;
extern unsigned int tracking_block_maximum_count;
extern unsigned int tracking_block_maximum_shift;
extern bool blkfilter_ioctls;
extern bool enable_test_ioctls;
extern unsigned int test_lookup_delay_us;

void param_clamp(const char *name, unsigned int *value, unsigned int lo,
		 unsigned int hi);
void params_validate(void);

#endif /* __BLKSNAP_PARAMS_H */
