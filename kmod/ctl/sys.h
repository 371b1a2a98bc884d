/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap's system call layer. The library reaches the kernel only
 * through these functions, each returning a non-negative result or -errno
 * (errno is read at once and never kept). sys_linux.c implements them with
 * the real calls; the native tests link a fake instead (tests/native/).
 */
#ifndef LIBBLKSNAP_SYS_H
#define LIBBLKSNAP_SYS_H

#include <sys/stat.h>

#define BLKSNAP_HIDDEN __attribute__((visibility("hidden")))

/* open(2) with O_CLOEXEC added: the fd or -errno. */
BLKSNAP_HIDDEN int blksnap__sys_open(const char *path, int flags);
/* close(2); errors are ignored. */
BLKSNAP_HIDDEN void blksnap__sys_close(int fd);
/* ioctl(2): the kernel's non-negative result or -errno. */
BLKSNAP_HIDDEN int blksnap__sys_ioctl(int fd, unsigned long request,
				      void *arg);
/* stat(2) and fstat(2): 0 or -errno. */
BLKSNAP_HIDDEN int blksnap__sys_stat(const char *path, struct stat *st);
BLKSNAP_HIDDEN int blksnap__sys_fstat(int fd, struct stat *st);

#endif /* LIBBLKSNAP_SYS_H */
