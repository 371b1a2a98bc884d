/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the guest tools (cbt_tool, snap_ctl, blkfilter_tool) share: errno
 * names in both directions, TAP lines with a failure count, snapshot ids and
 * the control device.
 *
 * Each tool defines TOOL_NAME before including this file; everything here
 * is static to the one translation unit that includes it.
 */
#ifndef BLKSNAP_VM_TOOL_H
#define BLKSNAP_VM_TOOL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <blksnap.h>

#ifndef TOOL_NAME
#error "define TOOL_NAME before including tool.h"
#endif

/* The control device, opened on first use by open_ctl(). */
static int ctl_fd = -1;
/* "not ok" lines printed so far; the tools exit 1 when it is not zero. */
static int failures;

static const struct {
	int err;
	const char *name;
} tool_errnames[] = {
	{ 0, "OK" }, { EPERM, "EPERM" }, { ENOENT, "ENOENT" },
	{ EFAULT, "EFAULT" }, { EINVAL, "EINVAL" }, { ENOTTY, "ENOTTY" },
	{ EALREADY, "EALREADY" }, { ENODATA, "ENODATA" }, { ENXIO, "ENXIO" },
	{ ENODEV, "ENODEV" }, { EBUSY, "EBUSY" }, { EACCES, "EACCES" },
	{ ENOMEM, "ENOMEM" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { ESRCH, "ESRCH" },
	{ ENOSPC, "ENOSPC" }, { EINTR, "EINTR" }, { ENAMETOOLONG, "ENAMETOOLONG" },
	{ EIO, "EIO" }, { EROFS, "EROFS" }, { EEXIST, "EEXIST" },
	{ EAGAIN, "EAGAIN" }, { EDEADLK, "EDEADLK" },
};

#define TOOL_NERRNAMES (sizeof(tool_errnames) / sizeof(tool_errnames[0]))

/* "EBUSY" for EBUSY (positive), "E<n>" for one not in the table. */
static inline const char *errname(int err)
{
	static char buf[32];
	size_t i;

	for (i = 0; i < TOOL_NERRNAMES; i++)
		if (tool_errnames[i].err == err)
			return tool_errnames[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

/* The errno named by @name ("OK" is 0), or -1 for an unknown name. */
static inline int errnum(const char *name)
{
	size_t i;

	for (i = 0; i < TOOL_NERRNAMES; i++)
		if (!strcmp(tool_errnames[i].name, name))
			return tool_errnames[i].err;
	return -1;
}

/* One TAP line; a failure is counted in @failures. */
static inline void tap(int ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void tap(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

/* TAP: @rc (0 or -errno) is -@want. */
static inline void expect_rc(int rc, int want, const char *what)
{
	tap(rc == -want, "%s gives %s%s%s", what, errname(want),
	    rc == -want ? "" : ", got ", rc == -want ? "" : errname(-rc));
}

/* Parses a snapshot id (32 hex digits, dashes anywhere); exit 2 if bad. */
static inline void uuid_parse(const char *s, struct blksnap_uuid *id)
{
	int i, j = 0;

	memset(id, 0, sizeof(*id));
	for (i = 0; i < 16; i++) {
		unsigned int v;

		while (s[j] == '-')
			j++;
		if (sscanf(s + j, "%2x", &v) != 1) {
			fprintf(stderr, TOOL_NAME ": bad id '%s'\n", s);
			exit(2);
		}
		id->b[i] = v;
		j += 2;
	}
}

/* Open /dev/blksnap-control once; exit 1 with a message if it cannot be. */
static inline void open_ctl(void)
{
	if (ctl_fd >= 0)
		return;
	ctl_fd = open("/dev/" BLKSNAP_CTL, O_RDWR);
	if (ctl_fd < 0) {
		fprintf(stderr, TOOL_NAME ": /dev/%s: %s\n", BLKSNAP_CTL,
			strerror(errno));
		exit(1);
	}
}

#endif /* BLKSNAP_VM_TOOL_H */
