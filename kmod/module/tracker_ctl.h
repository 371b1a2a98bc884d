/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The tracker requests (attach, detach, the per-device commands, the test
 * switch), from the control device or as BLKFILTER_* requests on a device
 * fd: argument checks and the CBT commands. See
 * docs/kernel-abi.md for each request's errors.
 */
#ifndef __BLKSNAP_TRACKER_CTL_H
#define __BLKSNAP_TRACKER_CTL_H

#include <blksnap.h>

/* @uarg is the ioctl's user pointer. May sleep. */
int tracker_ioctl_attach(struct blksnap_filter_request __user *uarg);
int tracker_ioctl_detach(struct blksnap_filter_request __user *uarg);
int tracker_ioctl_ctl(struct blksnap_filter_request __user *uarg);
int tracker_ioctl_test_cbt_switch(struct blksnap_filter_request __user *uarg);
/* A BLKFILTER request on a device fd (ioctl_hook.c's handler). May sleep. */
int tracker_ioctl_blkfilter(dev_t dev_id, unsigned int cmd, void __user *argp);

#endif /* __BLKSNAP_TRACKER_CTL_H */
