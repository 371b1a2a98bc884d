/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-device transport on stock kernels: BLKFILTER_ATTACH, _DETACH and
 * _CTL sent on an open block-device fd (the requests of upstream's
 * blkfilter patch) are taken off the block layer's ioctl entry points by
 * ftrace hooks and answered by a handler its owner registers; every other
 * request goes on untouched. Depends on nothing above it.
 */
#ifndef __BLKSNAP_IOCTL_HOOK_H
#define __BLKSNAP_IOCTL_HOOK_H

#include <linux/types.h>

/**
 * typedef ioctl_hook_fn - Answers one BLKFILTER request.
 * @dev_id: The device the fd is open on (a whole disk or a partition).
 * @cmd: BLKFILTER_ATTACH, BLKFILTER_DETACH or BLKFILTER_CTL.
 * @argp: The request's argument (already converted for a compat caller).
 *
 * Runs in the ioctl caller's context, may sleep.
 * Return: what the ioctl returns: 0 or -errno.
 */
typedef int (*ioctl_hook_fn)(dev_t dev_id, unsigned int cmd,
			     void __user *argp);

/*
 * Install the hooks, calling @fn for the three requests. May sleep.
 * Return: 0 or -errno (nothing is installed then).
 */
int ioctl_hook_init(ioctl_hook_fn fn);
/* Remove the hooks and wait until no task runs in one. May sleep. */
void ioctl_hook_done(void);

#endif /* __BLKSNAP_IOCTL_HOOK_H */
