/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control device's tracker requests (attach, detach, the per-device
 * commands, the test switch): argument checks and the CBT commands. See
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

#endif /* __BLKSNAP_TRACKER_CTL_H */
