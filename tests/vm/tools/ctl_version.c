// SPDX-License-Identifier: GPL-2.0
/*
 * ctl_version: prints the module's version from IOCTL_BLKSNAP_VERSION, as
 * "major.minor.revision.build". Exit 0 on success, 1 on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <blksnap.h>

int main(void)
{
	struct blksnap_version v;
	int fd = open("/dev/" BLKSNAP_CTL, O_RDWR);

	if (fd < 0) {
		fprintf(stderr, "ctl_version: /dev/%s: %s\n", BLKSNAP_CTL,
			strerror(errno));
		return 1;
	}
	if (ioctl(fd, IOCTL_BLKSNAP_VERSION, &v)) {
		fprintf(stderr, "ctl_version: ioctl: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	printf("%u.%u.%u.%u\n", v.major, v.minor, v.revision, v.build);
	close(fd);
	return 0;
}
