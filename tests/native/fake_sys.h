/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake system call layer for libblksnap (replaces kmod/ctl/sys_linux.c in
 * the test build). It emulates, in memory, just enough of the kernel for the
 * library's tests: a few block devices, the control device, both transports
 * (blkfilter on the device fd, or the control-device requests), trackers
 * with a small CBT map, and snapshots. It records the last request and can
 * be told to fail the next request of a given number with an errno.
 *
 * Paths: /dev/fakeblk0../dev/fakeblk3 are block devices 254:0..254:3,
 * /dev/blksnap-control the control device (absent when the module is
 * "unloaded"), /fake/file a regular file, /fake/chr a character device
 * that is not blksnap. Any other path goes to the real system calls.
 */
#ifndef FAKE_SYS_H
#define FAKE_SYS_H

#include <stdint.h>

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_MAJOR 254u
#define FAKE_DEVICES 4

/* Back to the initial state: module loaded, control transport, no
 * trackers, no snapshots, no failures armed, snapshots answer -EOPNOTSUPP
 * unless fake_set_snapshots(1). Open fake fds stay counted. */
FAKE_EXPORT void fake_reset(void);
/* 1: the kernel has blkfilter (the probe answers -EFAULT); 0: it has not
 * (the probe answers @probe_errno, e.g. ENOTTY or EINVAL); 2: a stock
 * kernel whose blksnap module answers BLKFILTER on the device fd while it
 * is loaded (the driver answers @probe_errno when it is not). */
FAKE_EXPORT void fake_set_blkfilter(int on, int probe_errno);
/* 0 removes the control device and the filter (module unloaded). */
FAKE_EXPORT void fake_set_module(int loaded);
/* 1 makes the snapshot requests work instead of -EOPNOTSUPP. */
FAKE_EXPORT void fake_set_snapshots(int on);
/* The next ioctl with this request number (or, for a blksnap sub-command
 * through either transport, 0x100 + cmd) fails with -err, @times times. */
FAKE_EXPORT void fake_fail(unsigned long request, int err, int times);
/* The geometry a tracker gets when attached to device @index. */
FAKE_EXPORT void fake_set_geometry(int index, uint64_t capacity,
				   uint32_t block_size);
/* Set read-map bytes of an attached tracker. */
FAKE_EXPORT int fake_set_map(int index, uint32_t offset, uint8_t value,
			     uint32_t count);
/* Queue an event for the next wait on any snapshot. */
FAKE_EXPORT void fake_queue_event(uint32_t code, int64_t time_label,
				  const void *data, uint32_t len);
/* How many fake fds are open. */
FAKE_EXPORT int fake_open_fds(void);
/* How many ioctls were made since the last reset, and how many of them
 * carried this request number (0 counts them all). */
FAKE_EXPORT int fake_ioctl_count(unsigned long request);
/* The last ioctl: its fd kind (1 device, 2 control), request number, and a
 * copy of its argument struct (up to 64 bytes; @len gets its size). */
FAKE_EXPORT int fake_last(unsigned long *request, void *arg, uint32_t *len);
/* The last blksnap sub-command: cmd, optlen, and a copy of its payload (up
 * to 64 bytes). */
FAKE_EXPORT int fake_last_ctl(uint32_t *cmd, uint32_t *optlen, void *opt);

#endif /* FAKE_SYS_H */
