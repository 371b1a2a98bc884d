// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap's system call layer: the real calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "sys.h"

int blksnap__sys_open(const char *path, int flags)
{
	int fd;

	do {
		fd = open(path, flags | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

void blksnap__sys_close(int fd)
{
	/* Linux releases the fd even when close() reports EINTR: no retry. */
	(void)close(fd);
}

int blksnap__sys_ioctl(int fd, unsigned long request, void *arg)
{
	int ret = ioctl(fd, request, arg);

	return ret < 0 ? -errno : ret;
}

int blksnap__sys_stat(const char *path, struct stat *st)
{
	return stat(path, st) < 0 ? -errno : 0;
}

int blksnap__sys_fstat(int fd, struct stat *st)
{
	return fstat(fd, st) < 0 ? -errno : 0;
}
