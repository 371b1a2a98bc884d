// SPDX-License-Identifier: GPL-2.0
/*
 * blkfilter_tool: the per-device requests as upstream's tools send them,
 * BLKFILTER_ATTACH/DETACH/CTL on the block device's own fd, side by side
 * with the control device's IOCTL_BLKSNAP_FILTER_* for the same device.
 *
 *   blkfilter_tool attach|detach|info DEV  one request on DEV's fd
 *   blkfilter_tool add DEV ID        snapshotadd of DEV to snapshot ID
 *                                    (from snap_ctl create) on DEV's fd
 *   blkfilter_tool same DEV          TAP: every request through both routes
 *                                    gives the same result (DEV detached;
 *                                    needs /dev/shm for a snapshot)
 *   blkfilter_tool badinput DEV      TAP: bad input, same errno both ways
 *                                    (DEV attached; its map is not changed)
 *   blkfilter_tool nobody DEV        TAP: an fd opened as root, used as uid
 *                                    65534: every request gives EPERM
 *   blkfilter_tool unrelated DEV     other requests on DEV's fd, one
 *                                    "name=result" line each, for comparing
 *                                    runs with and without the module; and
 *                                    libblksnap's probe (BLKFILTER_DETACH
 *                                    with a NULL argument)
 *
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <blksnap.h>

#define TOOL_NAME "blkfilter_tool"
#include "tool.h"

/* DEV, open read-only (as upstream's library opens it), and its number. */
static int dev_fd = -1;
static dev_t dev_rdev;

static void open_dev(const char *path)
{
	struct stat st;

	dev_fd = open(path, O_RDONLY | O_NONBLOCK);
	if (dev_fd < 0 || fstat(dev_fd, &st) || !S_ISBLK(st.st_mode)) {
		fprintf(stderr, TOOL_NAME ": %s: not an openable block device\n",
			path);
		exit(2);
	}
	dev_rdev = st.st_rdev;
}

static int rc_of(int ret)
{
	return ret < 0 ? -errno : ret;
}

/* The two routes of one request. */
enum route { BY_FD, BY_CTL };

static const char *route_name(enum route r)
{
	return r == BY_FD ? "device fd" : "control device";
}

/*
 * A request through @r. @name NULL means "blksnap"; @null_arg sends a NULL
 * argument pointer instead of the request struct.
 */
struct request {
	unsigned long fd_nr;	/* BLKFILTER_* */
	unsigned long ctl_nr;	/* IOCTL_BLKSNAP_FILTER_* */
	const char *name;
	uint32_t cmd;
	void *opt;
	uint32_t optlen;
	int null_arg;
	/* Nonzero: copy this many bytes of @name (bytes after a NUL too). */
	size_t name_len;
};

static void put_name(uint8_t *field, const struct request *q)
{
	const char *name = q->name ? q->name : BLKSNAP_FILTER_NAME;

	if (q->name_len)
		memcpy(field, name, q->name_len);
	else
		strncpy((char *)field, name, BLKFILTER_NAME_LENGTH);
}

static int send_request(enum route r, const struct request *q)
{
	if (r == BY_FD) {
		union {
			struct blkfilter_attach attach;
			struct blkfilter_detach detach;
			struct blkfilter_ctl ctl;
		} arg;

		memset(&arg, 0, sizeof(arg));
		/* name is the first field of all three. */
		put_name(arg.ctl.name, q);
		if (q->fd_nr == BLKFILTER_CTL) {
			arg.ctl.cmd = q->cmd;
			arg.ctl.optlen = q->optlen;
			arg.ctl.opt = (uintptr_t)q->opt;
		}
		return rc_of(ioctl(dev_fd, q->fd_nr, q->null_arg ? NULL : &arg));
	} else {
		struct blksnap_filter_request arg;

		memset(&arg, 0, sizeof(arg));
		arg.dev_major = major(dev_rdev);
		arg.dev_minor = minor(dev_rdev);
		put_name(arg.name, q);
		arg.cmd = q->cmd;
		arg.optlen = q->optlen;
		arg.opt = (uintptr_t)q->opt;
		open_ctl();
		return rc_of(ioctl(ctl_fd, q->ctl_nr, q->null_arg ? NULL : &arg));
	}
}

static int attach(enum route r)
{
	struct request q = { .fd_nr = BLKFILTER_ATTACH,
			     .ctl_nr = IOCTL_BLKSNAP_FILTER_ATTACH };

	return send_request(r, &q);
}

static int detach(enum route r)
{
	struct request q = { .fd_nr = BLKFILTER_DETACH,
			     .ctl_nr = IOCTL_BLKSNAP_FILTER_DETACH };

	return send_request(r, &q);
}

static int ctl(enum route r, uint32_t cmd, void *opt, uint32_t optlen)
{
	struct request q = { .fd_nr = BLKFILTER_CTL,
			     .ctl_nr = IOCTL_BLKSNAP_FILTER_CTL, .cmd = cmd,
			     .opt = opt, .optlen = optlen };

	return send_request(r, &q);
}

static int cbtinfo(enum route r, struct blksnap_cbtinfo *info)
{
	memset(info, 0xA5, sizeof(*info));
	return ctl(r, BLKFILTER_CTL_BLKSNAP_CBTINFO, info, sizeof(*info));
}

static int cbtmap(enum route r, uint32_t off, uint32_t len, void *buf)
{
	struct blksnap_cbtmap m = { .offset = off, .length = len,
				    .buffer = (uintptr_t)buf };

	return ctl(r, BLKFILTER_CTL_BLKSNAP_CBTMAP, &m, sizeof(m));
}

static int cbtdirty(enum route r, struct blksnap_sectors *s, uint32_t n)
{
	struct blksnap_cbtdirty d = { .count = n,
				      .dirty_sectors = (uintptr_t)s };

	return ctl(r, BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &d, sizeof(d));
}

static int snapshotinfo(enum route r, struct blksnap_snapshotinfo *info)
{
	memset(info, 0xA5, sizeof(*info));
	return ctl(r, BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, info, sizeof(*info));
}

static int snapshotadd(enum route r, const struct blksnap_uuid *id)
{
	struct blksnap_snapshotadd a = { .id = *id };

	return ctl(r, BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, &a, sizeof(a));
}

/* TAP: @rc through @r is -@want. */
static void expect_route(int rc, int want, enum route r, const char *what)
{
	char buf[160];

	snprintf(buf, sizeof(buf), "%s through the %s", what, route_name(r));
	expect_rc(rc, want, buf);
}

/* ---------------------------------------------------------------------- */
/* One request on the fd                                                   */
/* ---------------------------------------------------------------------- */

static int cmd_single(const char *what, const char *id)
{
	struct blksnap_cbtinfo info;
	struct blksnap_uuid uuid;
	int rc;

	if (id) {
		uuid_parse(id, &uuid);
		rc = snapshotadd(BY_FD, &uuid);
	} else if (!strcmp(what, "attach"))
		rc = attach(BY_FD);
	else if (!strcmp(what, "detach"))
		rc = detach(BY_FD);
	else
		rc = cbtinfo(BY_FD, &info);
	if (rc) {
		fprintf(stderr, TOOL_NAME ": %s: %s\n", what, errname(-rc));
		return 1;
	}
	if (!strcmp(what, "info"))
		printf("device_capacity=%llu block_size=%u block_count=%u changes_number=%u\n",
		       (unsigned long long)info.device_capacity,
		       info.block_size, info.block_count, info.changes_number);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* same: both routes, request by request                                  */
/* ---------------------------------------------------------------------- */

static int snapshot_create(const char *dir, struct blksnap_uuid *id)
{
	struct blksnap_snapshot_create arg = {
		.diff_storage_limit_sect = 128 << 11, /* 128 MiB */
		.diff_storage_filename = (uintptr_t)dir,
	};
	int rc;

	open_ctl();
	rc = rc_of(ioctl(ctl_fd, IOCTL_BLKSNAP_SNAPSHOT_CREATE, &arg));
	*id = arg.id;
	return rc;
}

static int snapshot_uuid_request(unsigned long nr, struct blksnap_uuid *id)
{
	open_ctl();
	return rc_of(ioctl(ctl_fd, nr, id));
}

/* Both routes' answers to the same read-only ctl command are equal. */
static void same_info(const char *when)
{
	struct blksnap_cbtinfo a, b;
	struct blksnap_snapshotinfo sa, sb;
	int ra = cbtinfo(BY_FD, &a), rb = cbtinfo(BY_CTL, &b);

	tap(ra == 0 && rb == 0 && !memcmp(&a, &b, sizeof(a)),
	    "%s: cbtinfo is the same through both routes (%s, %s)", when,
	    errname(-ra), errname(-rb));
	ra = snapshotinfo(BY_FD, &sa);
	rb = snapshotinfo(BY_CTL, &sb);
	tap(ra == 0 && rb == 0 && !memcmp(&sa, &sb, sizeof(sa)),
	    "%s: snapshotinfo is the same through both routes (image '%.32s')",
	    when, (char *)sa.image);
}

static void same_map(const char *when, uint32_t count, int marked)
{
	uint8_t *a = calloc(1, count), *b = calloc(1, count);
	uint32_t i, nonzero = 0;
	int ra, rb;

	memset(b, 0x5A, count);
	ra = cbtmap(BY_FD, 0, count, a);
	rb = cbtmap(BY_CTL, 0, count, b);
	for (i = 0; i < count; i++)
		nonzero += a[i] != 0;
	tap(ra == 0 && rb == 0 && !memcmp(a, b, count) &&
		    (int)nonzero == marked,
	    "%s: the whole map is the same through both routes, %u blocks marked (want %d)",
	    when, nonzero, marked);
	free(a);
	free(b);
}

static int cmd_same(void)
{
	struct blksnap_cbtinfo info;
	struct blksnap_snapshotinfo sinfo;
	struct blksnap_sectors range;
	struct blksnap_uuid id;
	uint32_t blocks, spb;
	enum route r;
	int rc;

	for (r = BY_FD; r <= BY_CTL; r++) {
		expect_route(detach(r), ENOENT, r, "detach of an unattached device");
		expect_route(cbtinfo(r, &info), ENOENT, r,
			     "cbtinfo of an unattached device");
		expect_route(snapshotinfo(r, &sinfo), ENOENT, r,
			     "snapshotinfo of an unattached device");
	}

	expect_route(attach(BY_FD), 0, BY_FD, "attach");
	for (r = BY_FD; r <= BY_CTL; r++)
		expect_route(attach(r), EALREADY, r, "attach again");
	same_info("attached");
	if (cbtinfo(BY_FD, &info))
		return 1;
	blocks = info.block_count;
	spb = info.block_size >> 9;
	tap(info.changes_number == 0 && blocks > 8,
	    "a new tracker: changes_number 0, %u blocks", blocks);
	same_map("new", blocks, 0);

	/* cbtdirty through each route: both maps see both marks. */
	range.offset = 2ULL * spb;
	range.count = spb;
	expect_route(cbtdirty(BY_FD, &range, 1), 0, BY_FD, "cbtdirty of block 2");
	range.offset = 5ULL * spb + 1;
	range.count = 2 * spb;
	expect_route(cbtdirty(BY_CTL, &range, 1), 0, BY_CTL,
		     "cbtdirty of blocks 5-7");
	/* Before the first take the read map gets the previous number, 0. */
	same_map("marked before a take", blocks, 0);

	/* A snapshot: add through the fd, the control route sees it. */
	rc = snapshot_create("/dev/shm", &id);
	expect_rc(rc, 0, "snapshot create in /dev/shm");
	if (!rc) {
		expect_route(snapshotadd(BY_FD, &id), 0, BY_FD, "snapshotadd");
		for (r = BY_FD; r <= BY_CTL; r++)
			expect_route(snapshotadd(r, &id), EALREADY, r,
				     "snapshotadd again");
		same_info("in a snapshot");
		expect_rc(snapshot_uuid_request(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id),
			  0, "snapshot take");
		same_info("taken");
		if (!snapshotinfo(BY_FD, &sinfo))
			tap(sinfo.error_code == 0 &&
				    !strncmp((char *)sinfo.image, "blksnap-", 8),
			    "the image is named %.32s", (char *)sinfo.image);
		if (!cbtinfo(BY_FD, &info))
			tap(info.changes_number == 1,
			    "the take switched the map: changes_number %u",
			    info.changes_number);
		/* The write map's marks moved to the read map at the take. */
		same_map("taken", blocks, 4);
		range.offset = 9ULL * spb;
		range.count = 1;
		expect_route(cbtdirty(BY_FD, &range, 1), 0, BY_FD,
			     "cbtdirty of block 9 after the take");
		same_map("marked after the take", blocks, 5);
		expect_rc(snapshot_uuid_request(IOCTL_BLKSNAP_SNAPSHOT_DESTROY,
						&id),
			  0, "snapshot destroy");
		same_info("destroyed");
	}

	/* Detach through one route, the other sees it gone; and back. */
	expect_route(detach(BY_CTL), 0, BY_CTL, "detach");
	for (r = BY_FD; r <= BY_CTL; r++)
		expect_route(detach(r), ENOENT, r, "detach again");
	expect_route(attach(BY_CTL), 0, BY_CTL, "attach");
	expect_route(cbtinfo(BY_FD, &info), 0, BY_FD,
		     "cbtinfo after an attach through the control device");
	expect_route(detach(BY_FD), 0, BY_FD, "detach");
	expect_route(cbtinfo(BY_CTL, &info), ENOENT, BY_CTL,
		     "cbtinfo after a detach through the device fd");
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* badinput: the same errno through both routes                           */
/* ---------------------------------------------------------------------- */

/* Sends @q through both routes; passes when both give -@want. */
static void expect_both(const struct request *q, int want, const char *what)
{
	int a = send_request(BY_FD, q), b = send_request(BY_CTL, q);

	tap(a == -want && b == -want,
	    "%s gives %s through both routes (device fd %s, control device %s)",
	    what, errname(want), errname(-a), errname(-b));
}

static void expect_both_ctl(uint32_t cmd, void *opt, uint32_t optlen,
			    int want, const char *what)
{
	struct request q = { .fd_nr = BLKFILTER_CTL,
			     .ctl_nr = IOCTL_BLKSNAP_FILTER_CTL, .cmd = cmd,
			     .opt = opt, .optlen = optlen };

	expect_both(&q, want, what);
}

static int cmd_badinput(void)
{
	static const struct {
		unsigned long fd_nr, ctl_nr;
		const char *what;
	} kinds[] = {
		{ BLKFILTER_ATTACH, IOCTL_BLKSNAP_FILTER_ATTACH, "attach" },
		{ BLKFILTER_DETACH, IOCTL_BLKSNAP_FILTER_DETACH, "detach" },
		{ BLKFILTER_CTL, IOCTL_BLKSNAP_FILTER_CTL, "ctl" },
	};
	static const char *const bad_names[] = {
		"", "blksna", "blksnapX", "BLKSNAP", "veeamsnap",
		/* 32 bytes, no NUL within the field */
		"blksnapblksnapblksnapblksnapblks",
	};
	struct blksnap_cbtinfo info;
	struct blksnap_snapshotinfo sinfo;
	struct blksnap_sectors ranges[2];
	struct blksnap_cbtmap map;
	struct blksnap_cbtdirty dirty;
	struct blksnap_uuid unknown;
	uint8_t *before, *after, byte;
	char what[128];
	uint32_t blocks;
	size_t k, n;

	if (cbtinfo(BY_FD, &info)) {
		fprintf(stderr, TOOL_NAME ": badinput needs DEV attached\n");
		return 2;
	}
	blocks = info.block_count;
	before = calloc(1, blocks);
	after = calloc(1, blocks);
	if (cbtmap(BY_FD, 0, blocks, before))
		return 1;

	for (k = 0; k < 3; k++) {
		struct request q = { .fd_nr = kinds[k].fd_nr,
				     .ctl_nr = kinds[k].ctl_nr };

		q.null_arg = 1;
		snprintf(what, sizeof(what), "%s with a NULL argument",
			 kinds[k].what);
		expect_both(&q, EFAULT, what);
		q.null_arg = 0;
		for (n = 0; n < sizeof(bad_names) / sizeof(bad_names[0]); n++) {
			q.name = bad_names[n];
			snprintf(what, sizeof(what), "%s with the name '%.32s'",
				 kinds[k].what, bad_names[n]);
			expect_both(&q, EINVAL, what);
		}
	}
	/* A name followed by garbage after its NUL is the name. */
	{
		struct request q = { .fd_nr = BLKFILTER_CTL,
				     .ctl_nr = IOCTL_BLKSNAP_FILTER_CTL,
				     .name = "blksnap\0garbage", .name_len = 16,
				     .cmd = BLKFILTER_CTL_BLKSNAP_CBTINFO,
				     .opt = &info, .optlen = sizeof(info) };

		expect_both(&q, 0, "cbtinfo with 'blksnap' NUL garbage as name");
	}

	expect_both_ctl(5, &info, sizeof(info), ENOTTY, "ctl command 5");
	expect_both_ctl(0xffffffffu, &info, sizeof(info), ENOTTY,
			"ctl command 0xffffffff");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTINFO, &info, sizeof(info) - 1,
			EINVAL, "cbtinfo with optlen 39");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTINFO, NULL, sizeof(info),
			EFAULT, "cbtinfo into NULL");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTINFO, (void *)1, sizeof(info),
			EFAULT, "cbtinfo into address 1");

	map = (struct blksnap_cbtmap){ 0, 0, (uintptr_t)&byte };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTMAP, &map, sizeof(map), EINVAL,
			"cbtmap of length 0");
	map = (struct blksnap_cbtmap){ blocks, 1, (uintptr_t)&byte };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTMAP, &map, sizeof(map), ENODATA,
			"cbtmap at block_count");
	map = (struct blksnap_cbtmap){ 1, 0xffffffffu, (uintptr_t)after };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTMAP, &map, sizeof(map), ENODATA,
			"cbtmap whose end wraps");
	map = (struct blksnap_cbtmap){ 0, 1, 0 };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTMAP, &map, sizeof(map), EFAULT,
			"cbtmap into NULL");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTMAP, &map, sizeof(map) - 1,
			EINVAL, "cbtmap with optlen 15");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTMAP, NULL, sizeof(map), EFAULT,
			"cbtmap with a NULL payload");

	ranges[0] = (struct blksnap_sectors){ 0, 8 };
	ranges[1] = (struct blksnap_sectors){ info.device_capacity >> 9, 1 };
	dirty = (struct blksnap_cbtdirty){ 0, 0, (uintptr_t)ranges };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &dirty, sizeof(dirty),
			EINVAL, "cbtdirty of 0 ranges");
	dirty.count = BLKSNAP_CBTDIRTY_MAX_RANGES + 1;
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &dirty, sizeof(dirty),
			EINVAL, "cbtdirty of 65537 ranges");
	dirty.count = 2;
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &dirty, sizeof(dirty),
			EINVAL, "cbtdirty with a range past the end (first range valid)");
	ranges[1] = (struct blksnap_sectors){ 16, 0 };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &dirty, sizeof(dirty),
			EINVAL, "cbtdirty with an empty range");
	ranges[1] = (struct blksnap_sectors){ UINT64_MAX - 3, 8 };
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &dirty, sizeof(dirty),
			EINVAL, "cbtdirty with a range wrapping 2^64");
	dirty.dirty_sectors = 0;
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &dirty, sizeof(dirty),
			EFAULT, "cbtdirty with NULL ranges");

	memset(&unknown, 0x77, sizeof(unknown));
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, &unknown,
			sizeof(unknown), ESRCH, "snapshotadd of an unknown id");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, &unknown,
			sizeof(unknown) - 1, EINVAL, "snapshotadd with optlen 15");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, NULL,
			sizeof(unknown), EFAULT, "snapshotadd with a NULL payload");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, &sinfo,
			sizeof(sinfo) - 1, EINVAL, "snapshotinfo with optlen 35");
	expect_both_ctl(BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, NULL, sizeof(sinfo),
			EFAULT, "snapshotinfo into NULL");

	tap(cbtmap(BY_FD, 0, blocks, after) == 0 &&
		    !memcmp(before, after, blocks),
	    "the map is unchanged by the bad requests");
	free(before);
	free(after);
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* nobody: an fd opened by root, used without CAP_SYS_ADMIN               */
/* ---------------------------------------------------------------------- */

static int cmd_nobody(void)
{
	struct blksnap_cbtinfo info;
	struct blksnap_sectors range = { 0, 8 };
	struct blksnap_uuid id;
	struct request q = { .fd_nr = BLKFILTER_DETACH,
			     .ctl_nr = IOCTL_BLKSNAP_FILTER_DETACH };

	memset(&id, 0, sizeof(id));
	if (setgid(65534) || setuid(65534)) {
		perror(TOOL_NAME ": setuid");
		return 1;
	}
	expect_route(attach(BY_FD), EPERM, BY_FD, "attach as nobody");
	expect_route(detach(BY_FD), EPERM, BY_FD, "detach as nobody");
	expect_route(cbtinfo(BY_FD, &info), EPERM, BY_FD, "cbtinfo as nobody");
	expect_route(cbtdirty(BY_FD, &range, 1), EPERM, BY_FD,
		     "cbtdirty as nobody");
	expect_route(snapshotadd(BY_FD, &id), EPERM, BY_FD,
		     "snapshotadd as nobody");
	expect_route(ctl(BY_FD, 77, NULL, 0), EPERM, BY_FD,
		     "an unknown ctl command as nobody");
	/* libblksnap's transport probe: the capability comes first. */
	q.null_arg = 1;
	expect_route(send_request(BY_FD, &q), EPERM, BY_FD,
		     "detach with a NULL argument as nobody");
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* unrelated: what other requests on the same fd answer                   */
/* ---------------------------------------------------------------------- */

static void show(const char *name, int rc)
{
	printf("%s=%s\n", name, rc < 0 ? errname(-rc) : "OK");
}

static int cmd_unrelated(void)
{
	struct loop_info64 lo;
	uint64_t size = 0;
	int ssz = 0, ro = -1;
	int rc;

	rc = rc_of(ioctl(dev_fd, BLKGETSIZE64, &size));
	printf("BLKGETSIZE64=%s %llu\n", rc ? errname(-rc) : "OK",
	       (unsigned long long)size);
	rc = rc_of(ioctl(dev_fd, BLKSSZGET, &ssz));
	printf("BLKSSZGET=%s %d\n", rc ? errname(-rc) : "OK", ssz);
	rc = rc_of(ioctl(dev_fd, BLKROGET, &ro));
	printf("BLKROGET=%s %d\n", rc ? errname(-rc) : "OK", ro);
	show("BLKFLSBUF", rc_of(ioctl(dev_fd, BLKFLSBUF, 0)));
	memset(&lo, 0, sizeof(lo));
	rc = rc_of(ioctl(dev_fd, LOOP_GET_STATUS64, &lo));
	printf("LOOP_GET_STATUS64=%s number=%u offset=%llu sizelimit=%llu flags=%#x file=%.64s\n",
	       rc ? errname(-rc) : "OK", lo.lo_number,
	       (unsigned long long)lo.lo_offset,
	       (unsigned long long)lo.lo_sizelimit, lo.lo_flags,
	       (char *)lo.lo_file_name);
	/* libblksnap's transport probe: the module answers it (EFAULT). */
	show("BLKFILTER_DETACH_NULL", rc_of(ioctl(dev_fd, BLKFILTER_DETACH,
						  NULL)));
	/* Neighbours of the three numbers are not ours: the driver answers. */
	show("BLK_0x12_141", rc_of(ioctl(dev_fd, _IOWR(0x12, 141,
						       struct blkfilter_ctl),
					 NULL)));
	show("BLK_0x12_145", rc_of(ioctl(dev_fd, _IOWR(0x12, 145,
						       struct blkfilter_ctl),
					 NULL)));
	show("BLKFILTER_CTL_SIZE_44", rc_of(ioctl(dev_fd, _IOWR(0x12, 144,
						   char[44]), NULL)));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "add")) {
		open_dev(argv[2]);
		return cmd_single(argv[1], argv[3]);
	}
	if (argc != 3)
		goto usage;
	open_dev(argv[2]);
	if (!strcmp(argv[1], "attach") || !strcmp(argv[1], "detach") ||
	    !strcmp(argv[1], "info"))
		return cmd_single(argv[1], NULL);
	if (!strcmp(argv[1], "same"))
		return cmd_same();
	if (!strcmp(argv[1], "badinput"))
		return cmd_badinput();
	if (!strcmp(argv[1], "nobody"))
		return cmd_nobody();
	if (!strcmp(argv[1], "unrelated"))
		return cmd_unrelated();
usage:
	fprintf(stderr,
		"usage: " TOOL_NAME " attach|detach|info|same|badinput|nobody|unrelated DEV\n"
		"       " TOOL_NAME " add DEV ID\n");
	return 2;
}
