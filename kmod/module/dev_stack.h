/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The block devices a block device rests on: the device itself, the
 * devices under it through device-mapper and md (their holder links), and
 * the device holding a loop device's backing file, recursively. The
 * difference storage must rest on no device of its snapshot: a copy would
 * then write through a device whose writes wait for that copy.
 */
#ifndef __BLKSNAP_DEV_STACK_H
#define __BLKSNAP_DEV_STACK_H

#include <linux/types.h>

/* The most devices a stack may have; deeper ones are not looked at. */
#define DEV_STACK_MAX 32

/**
 * struct dev_stack - A device and the devices under it.
 * @count: Entries in @dev and @whole.
 * @dev: The devices, the first being the one the stack was built from.
 * @whole: The whole disk of each (the device itself for a whole disk).
 * @truncated: More devices were below than @dev holds.
 */
struct dev_stack {
	unsigned int count;
	dev_t dev[DEV_STACK_MAX];
	dev_t whole[DEV_STACK_MAX];
	bool truncated;
};

/*
 * Build the stack under the device @dev into @stack. Opens each device for
 * reading while it looks (a device it cannot open ends that branch). May
 * sleep; the caller holds none of the module's locks a device open could
 * need.
 */
void dev_stack_build(dev_t dev, struct dev_stack *stack);

/*
 * Is a device of @stack the device @dev (whose whole disk is @whole), a
 * partition of it, or its whole disk? Return: the index of the first such
 * device in @stack (0: the device the stack was built from), or -1.
 */
int dev_stack_find(const struct dev_stack *stack, dev_t dev, dev_t whole);

#endif /* __BLKSNAP_DEV_STACK_H */
