// SPDX-License-Identifier: GPL-2.0
/*
 * cbt_tool: drives the tracker ioctls of /dev/blksnap-control for the VM
 * suites, and runs the CBT checks that need byte-exact models.
 *
 *   cbt_tool attach|detach|info|switch DEV
 *   cbt_tool map DEV                   nonzero read-map bytes, "index value"
 *   cbt_tool dirty DEV SECTOR:COUNT... cbtdirty
 *   cbt_tool dirtyall DEV N            one cbtdirty of N whole-device ranges
 *                                      (a long request: holds the tracker)
 *   cbt_tool expect ERRNAME CMD DEV... passes when CMD fails with ERRNAME
 *   cbt_tool semantics DEV             TAP: writes vs a model (DEV attached)
 *   cbt_tool wrap DEV                  TAP: the 255 wrap (DEV attached)
 *   cbt_tool badinput DEV              TAP: bounds as root (DEV attached)
 *   cbt_tool nobody DEV                TAP: everything as uid 65534
 *   cbt_tool switches DEV N            N CBT switches of DEV, one after another
 *   cbt_tool writeswitch DEV N BLOCKS  for k = 1..N: write block k % BLOCKS,
 *                                      then switch (DEV freshly attached)
 *   cbt_tool mapraces DEV N BLOCKS     TAP: writeswitch on a thread while
 *                                      whole-map CBTMAP requests race it
 *   cbt_tool cycles DEV N [PAUSE_MS]   N attach/detach cycles (a pause after
 *                                      each detach lets a freed tracker stay
 *                                      free, not reused by the next attach)
 *   cbt_tool imgcmp DEV BEFORE AFTER PREV
 *                                      every changed block marked > PREV
 *   cbt_tool mkpart DEV START SIZE [START SIZE]...
 *                                      write an MBR with up to 4 partitions
 *   cbt_tool loop_remove N             LOOP_CTL_REMOVE of /dev/loopN
 *
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <blksnap.h>

#define TOOL_NAME "cbt_tool"
#include "tool.h"

/* The last device looked up, so that "nobody" can resolve it before setuid. */
static char cached_path[256];
static dev_t cached_rdev;

static int dev_of(const char *path, unsigned int *maj, unsigned int *min)
{
	struct stat st;

	if (!strcmp(path, cached_path)) {
		*maj = major(cached_rdev);
		*min = minor(cached_rdev);
		return 0;
	}
	if (stat(path, &st) || !S_ISBLK(st.st_mode)) {
		fprintf(stderr, "cbt_tool: %s: not a block device\n", path);
		exit(2);
	}
	*maj = major(st.st_rdev);
	*min = minor(st.st_rdev);
	snprintf(cached_path, sizeof(cached_path), "%s", path);
	cached_rdev = st.st_rdev;
	return 0;
}

static void req_init(struct blksnap_filter_request *req, const char *dev)
{
	memset(req, 0, sizeof(*req));
	dev_of(dev, &req->dev_major, &req->dev_minor);
	strcpy((char *)req->name, BLKSNAP_FILTER_NAME);
}

static int do_ioctl(unsigned long nr, void *arg)
{
	open_ctl();
	return ioctl(ctl_fd, nr, arg) ? -errno : 0;
}

static int ctl(const char *dev, unsigned int cmd, void *opt, unsigned int len)
{
	struct blksnap_filter_request req;

	req_init(&req, dev);
	req.cmd = cmd;
	req.opt = (uintptr_t)opt;
	req.optlen = len;
	return do_ioctl(IOCTL_BLKSNAP_FILTER_CTL, &req);
}

static int simple(unsigned long nr, const char *dev)
{
	struct blksnap_filter_request req;

	req_init(&req, dev);
	return do_ioctl(nr, &req);
}

static int cbtinfo(const char *dev, struct blksnap_cbtinfo *info)
{
	memset(info, 0, sizeof(*info));
	return ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTINFO, info, sizeof(*info));
}

static int cbtmap(const char *dev, uint32_t off, uint32_t len, void *buf)
{
	struct blksnap_cbtmap m = { .offset = off, .length = len,
				    .buffer = (uintptr_t)buf };

	return ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTMAP, &m, sizeof(m));
}

static int cbtdirty(const char *dev, struct blksnap_sectors *r, uint32_t n)
{
	struct blksnap_cbtdirty d = { .count = n,
				      .dirty_sectors = (uintptr_t)r };

	return ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &d, sizeof(d));
}

static void die_rc(const char *what, int rc)
{
	fprintf(stderr, "cbt_tool: %s: %s\n", what, errname(-rc));
	exit(1);
}

/* ---------------------------------------------------------------------- */
/* The model                                                              */
/* ---------------------------------------------------------------------- */

struct model {
	const char *dev;
	int fd;
	uint64_t capacity; /* bytes */
	uint32_t bsize, count;
	uint8_t *wmap, *rmap;
	uint8_t active, prev;
	struct blksnap_uuid gen;
};

static void model_init(struct model *m, const char *dev)
{
	struct blksnap_cbtinfo info;
	int rc = cbtinfo(dev, &info);

	if (rc)
		die_rc("cbtinfo", rc);
	m->dev = dev;
	m->capacity = info.device_capacity;
	m->bsize = info.block_size;
	m->count = info.block_count;
	m->gen = info.generation_id;
	m->prev = info.changes_number;
	m->active = m->prev + 1;
	m->wmap = calloc(m->count, 1);
	m->rmap = calloc(m->count, 1);
	m->fd = open(dev, O_RDWR | O_DIRECT);
	if (!m->wmap || !m->rmap || m->fd < 0) {
		perror("cbt_tool: model");
		exit(1);
	}
}

static void model_switch(struct model *m);

/*
 * Start from the kernel's state: switch once (not at the wrap), after which
 * the write map equals the read map, which can be read.
 */
static void model_sync(struct model *m)
{
	int rc;

	model_switch(m);
	if (m->prev == 255)
		model_switch(m);
	rc = cbtmap(m->dev, 0, m->count, m->rmap);
	if (rc)
		die_rc("cbtmap", rc);
	memcpy(m->wmap, m->rmap, m->count);
}

static void model_mark(struct model *m, uint8_t *map, uint64_t off,
		       uint64_t len, uint8_t num)
{
	uint64_t i;

	for (i = off / m->bsize; i <= (off + len - 1) / m->bsize; i++)
		if (map[i] < num)
			map[i] = num;
}

/* Read the whole read map from the kernel and compare with the model. */
static void model_check(struct model *m, const char *what)
{
	uint8_t *buf = malloc(m->count);
	uint32_t i, bad = 0, first = 0;
	int rc;

	rc = cbtmap(m->dev, 0, m->count, buf);
	if (rc) {
		tap(0, "%s: cbtmap: %s", what, errname(-rc));
		free(buf);
		return;
	}
	for (i = 0; i < m->count; i++) {
		if (buf[i] != m->rmap[i]) {
			if (!bad)
				first = i;
			bad++;
		}
	}
	tap(!bad, "%s: read map equals the model byte by byte", what);
	if (bad)
		printf("#   %u bytes differ, first at block %u: kernel %u, model %u\n",
		       bad, first, buf[first], m->rmap[first]);
	free(buf);
}

static void model_switch(struct model *m)
{
	int rc = simple(IOCTL_BLKSNAP_TEST_CBT_SWITCH, m->dev);

	if (rc)
		die_rc("switch", rc);
	m->prev = m->active;
	if (m->active == 255) {
		m->active = 1;
		memset(m->wmap, 0, m->count);
	} else {
		m->active++;
		memcpy(m->rmap, m->wmap, m->count);
	}
}

static void model_write(struct model *m, uint64_t off, uint64_t len)
{
	void *buf;

	if (posix_memalign(&buf, 4096, len)) {
		perror("cbt_tool: memalign");
		exit(1);
	}
	memset(buf, 0x5a, len);
	if (pwrite(m->fd, buf, len, off) != (ssize_t)len) {
		fprintf(stderr, "cbt_tool: write %llu+%llu: %s\n",
			(unsigned long long)off, (unsigned long long)len,
			strerror(errno));
		exit(1);
	}
	free(buf);
	model_mark(m, m->wmap, off, len, m->active);
}

static void model_read(struct model *m, uint64_t off, uint64_t len)
{
	void *buf;

	if (posix_memalign(&buf, 4096, len) ||
	    pread(m->fd, buf, len, off) != (ssize_t)len) {
		perror("cbt_tool: read");
		exit(1);
	}
	free(buf);
}

/* BLKDISCARD or BLKZEROOUT; 1 if done, 0 if the device does not support it. */
static int model_range_op(struct model *m, unsigned long op, uint64_t off,
			  uint64_t len)
{
	uint64_t r[2] = { off, len };

	if (ioctl(m->fd, op, r)) {
		if (errno == EOPNOTSUPP)
			return 0;
		perror("cbt_tool: discard/zeroout");
		exit(1);
	}
	model_mark(m, m->wmap, off, len, m->active);
	return 1;
}

static int cmd_semantics(const char *dev)
{
	struct model m;
	struct blksnap_cbtinfo info;
	struct blksnap_sectors r[3];
	uint64_t B, last;
	int rc;

	model_init(&m, dev);
	B = m.bsize;
	last = m.capacity - 4096;
	model_sync(&m);
	tap(m.count == (m.capacity + B - 1) / B,
	    "block_count %u = capacity %llu / block_size %u rounded up",
	    m.count, (unsigned long long)m.capacity, m.bsize);

	model_switch(&m);
	model_check(&m, "first switch, nothing written");

	model_write(&m, 0, 4096);			/* first block */
	model_write(&m, 5 * B + 512, 512);		/* one sector */
	model_write(&m, 10 * B - 4096, 8192);		/* straddles 9|10 */
	model_write(&m, last, 4096);			/* last block */
	model_write(&m, 100 * B, 1 << 20);		/* 1 MiB */
	model_write(&m, 20 * B + B - 512, 1024);	/* straddles 20|21 */
	model_read(&m, 300 * B, 1 << 20);		/* reads mark nothing */
	model_read(&m, 0, 65536);
	if (model_range_op(&m, BLKDISCARD, 200 * B, 2 * B))
		tap(1, "discard issued");
	else
		tap(1, "discard # SKIP the device has no discard");
	model_range_op(&m, BLKZEROOUT, 210 * B + 4096, 4096);
	model_switch(&m);
	model_check(&m, "single, straddling, first, last, discard, zeroout, reads");

	rc = cbtinfo(dev, &info);
	tap(!rc && info.changes_number == m.prev,
	    "cbtinfo changes_number %u is the previous number %u",
	    info.changes_number, m.prev);
	tap(!rc && !memcmp(&info.generation_id, &m.gen, 16),
	    "the generation is unchanged by switches");

	model_write(&m, 5 * B, 4096);
	model_write(&m, 400 * B + 7 * 512, 512);
	model_switch(&m);
	model_check(&m, "rewrites keep the highest number");

	/* cbtdirty marks both maps: read map now, write map at the switch. */
	r[0].offset = 0;
	r[0].count = 1;
	r[1].offset = 1500 * B / 512;
	r[1].count = 2 * B / 512 + 1;
	rc = cbtdirty(dev, r, 2);
	expect_rc(rc, 0, "cbtdirty of two ranges");
	model_mark(&m, m.wmap, 0, 512, m.active);
	model_mark(&m, m.rmap, 0, 512, m.prev);
	model_mark(&m, m.wmap, 1500 * B, 2 * B + 512, m.active);
	model_mark(&m, m.rmap, 1500 * B, 2 * B + 512, m.prev);
	model_check(&m, "cbtdirty marks the read map with the previous number");
	model_switch(&m);
	model_check(&m, "cbtdirty marks the write map with the active number");

	/* A bad range among good ones marks nothing. */
	r[0].offset = 600 * B / 512;
	r[0].count = 1;
	r[1].offset = m.capacity / 512;
	r[1].count = 1;
	rc = cbtdirty(dev, r, 2);
	expect_rc(rc, EINVAL, "cbtdirty with a range past the end");
	model_check(&m, "a rejected cbtdirty marked nothing in the read map");
	model_switch(&m);
	model_check(&m, "a rejected cbtdirty marked nothing in the write map");

	/* The last sector exactly; and a range ending at the capacity. */
	r[0].offset = m.capacity / 512 - 1;
	r[0].count = 1;
	r[1].offset = 0;
	r[1].count = m.capacity / 512;
	rc = cbtdirty(dev, r, 2);
	expect_rc(rc, 0, "cbtdirty of the last sector and of the whole device");
	model_mark(&m, m.wmap, 0, m.capacity, m.active);
	model_mark(&m, m.rmap, 0, m.capacity, m.prev);
	model_check(&m, "cbtdirty of the whole device");
	close(m.fd);
	return failures ? 1 : 0;
}

static int cmd_wrap(const char *dev)
{
	struct blksnap_cbtinfo info, info2;
	struct model m;
	int rc;

	model_init(&m, dev);
	model_sync(&m);
	/* Come to active = 255 (previous 254). */
	while (m.active != 255)
		model_switch(&m);
	tap(1, "switched up to active number 255");
	model_write(&m, 7 * (uint64_t)m.bsize, 4096);
	model_check(&m, "before the wrap");
	rc = cbtinfo(dev, &info);
	model_switch(&m);
	rc = rc ? rc : cbtinfo(dev, &info2);
	tap(!rc && info2.changes_number == 255,
	    "after the wrap changes_number is 255 (got %u)",
	    info2.changes_number);
	tap(!rc && memcmp(&info.generation_id, &info2.generation_id, 16),
	    "the wrap makes a new generation");
	model_check(&m, "the wrap leaves the read map as it was");
	model_write(&m, 8 * (uint64_t)m.bsize, 4096);
	model_switch(&m);
	rc = cbtinfo(dev, &info);
	tap(!rc && info.changes_number == 1,
	    "the first switch after the wrap gives changes_number 1 (got %u)",
	    info.changes_number);
	tap(!rc && !memcmp(&info.generation_id, &info2.generation_id, 16),
	    "and keeps the new generation");
	model_check(&m, "after the wrap the write map restarted from zero");
	tap(m.rmap[7] == 0 && m.rmap[8] == 1,
	    "model: block 7 (written before the wrap) is clear, block 8 is 1");
	close(m.fd);
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Bad input                                                              */
/* ---------------------------------------------------------------------- */

static int cmd_badinput(const char *dev)
{
	struct blksnap_filter_request req;
	struct blksnap_cbtinfo info;
	struct blksnap_sectors *r;
	uint8_t *buf, *before, *after;
	long page = sysconf(_SC_PAGESIZE);
	uint32_t n;
	char *pages;
	int rc;

	rc = cbtinfo(dev, &info);
	if (rc)
		die_rc("cbtinfo", rc);
	n = info.block_count;
	buf = malloc(n + 16);
	before = malloc(n);
	after = malloc(n);
	if (cbtmap(dev, 0, n, before))
		die_rc("cbtmap", -EIO);

	/* Request framing. */
	req_init(&req, dev);
	strcpy((char *)req.name, "blksnaq");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_CTL, &req), EINVAL,
		  "a wrong filter name");
	req_init(&req, dev);
	memset(req.name, 'b', sizeof(req.name));
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_ATTACH, &req), EINVAL,
		  "an unterminated filter name");
	req_init(&req, dev);
	req.dev_major = 0;
	req.dev_minor = 0;
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_ATTACH, &req), EINVAL,
		  "device 0:0");
	req_init(&req, dev);
	req.dev_major = 4096;
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_ATTACH, &req), EINVAL,
		  "major 4096");
	req_init(&req, dev);
	req.dev_minor = 1U << 20;
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_DETACH, &req), EINVAL,
		  "minor 2^20");
	req_init(&req, dev);
	req.dev_major = 259;	/* blkext: no such minor, nothing to probe */
	req.dev_minor = 1000000;
	rc = do_ioctl(IOCTL_BLKSNAP_FILTER_ATTACH, &req);
	tap(rc == -ENXIO || rc == -ENODEV,
	    "attach of a device that does not exist gives ENXIO/ENODEV (%s)",
	    errname(-rc));
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_DETACH, &req), ENOENT,
		  "detach of a device that does not exist");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_ATTACH, (void *)1), EFAULT,
		  "attach with a bad pointer");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_FILTER_CTL, NULL), EFAULT,
		  "ctl with a NULL pointer");
	expect_rc(do_ioctl(_IO(BLKSNAP_IOCTL_MAGIC, 99), NULL), ENOTTY,
		  "an unknown control ioctl");
	expect_rc(simple(IOCTL_BLKSNAP_FILTER_ATTACH, dev), EALREADY,
		  "attach twice");

	/* Commands. */
	expect_rc(ctl(dev, 5, &info, sizeof(info)), ENOTTY, "ctl command 5");
	expect_rc(ctl(dev, 0xffffffff, &info, sizeof(info)), ENOTTY,
		  "ctl command 0xffffffff");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTINFO, &info,
		      sizeof(info) - 1), EINVAL, "cbtinfo with optlen 39");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTINFO, NULL, sizeof(info)),
		  EFAULT, "cbtinfo to NULL");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTINFO, (void *)8,
		      sizeof(info)), EFAULT, "cbtinfo to a bad pointer");

	expect_rc(cbtmap(dev, 0, n, buf), 0, "cbtmap of the whole map");
	expect_rc(cbtmap(dev, n - 1, 1, buf), 0, "cbtmap of the last byte");
	expect_rc(cbtmap(dev, 1, n - 1, buf), 0,
		  "cbtmap with offset + length exactly at the end");
	expect_rc(cbtmap(dev, 0, 0, buf), EINVAL, "cbtmap of length 0");
	expect_rc(cbtmap(dev, n, 1, buf), ENODATA, "cbtmap at offset block_count");
	expect_rc(cbtmap(dev, n + 1, 0xffffffff, buf), ENODATA,
		  "cbtmap with an offset past the map");
	expect_rc(cbtmap(dev, 0, n + 1, buf), ENODATA,
		  "cbtmap one byte past the end");
	expect_rc(cbtmap(dev, 2, 0xfffffffe, buf), ENODATA,
		  "cbtmap with offset + length wrapping 2^32");
	expect_rc(cbtmap(dev, 0xffffffff, 2, buf), ENODATA,
		  "cbtmap with offset 2^32-1");
	expect_rc(cbtmap(dev, 0, n, NULL), EFAULT, "cbtmap into NULL");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTMAP, NULL, 16), EFAULT,
		  "cbtmap with a NULL request");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTMAP, buf, 15), EINVAL,
		  "cbtmap with optlen 15");

	r = calloc(4, sizeof(*r));
	expect_rc(cbtdirty(dev, r, 0), EINVAL, "cbtdirty of 0 ranges");
	expect_rc(cbtdirty(dev, r, BLKSNAP_CBTDIRTY_MAX_RANGES + 1), EINVAL,
		  "cbtdirty of BLKSNAP_CBTDIRTY_MAX_RANGES + 1 ranges");
	expect_rc(cbtdirty(dev, r, 0xffffffff), EINVAL,
		  "cbtdirty of 2^32-1 ranges");
	expect_rc(cbtdirty(dev, NULL, 1), EFAULT, "cbtdirty from NULL");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTDIRTY, NULL, 16), EFAULT,
		  "cbtdirty with a NULL request");
	r[0].offset = 8;
	r[0].count = 0;
	expect_rc(cbtdirty(dev, r, 1), EINVAL, "cbtdirty of a 0-sector range");
	r[0].offset = ~0ULL - 1;
	r[0].count = 2;
	expect_rc(cbtdirty(dev, r, 1), EINVAL,
		  "cbtdirty of a range wrapping 2^64");
	r[0].offset = 0;
	r[0].count = info.device_capacity / 512 + 1;
	expect_rc(cbtdirty(dev, r, 1), EINVAL,
		  "cbtdirty of a range one sector past the end");
	r[0].offset = 8;
	r[0].count = 8;
	r[1].offset = 1ULL << 62;
	r[1].count = 8;
	expect_rc(cbtdirty(dev, r, 2), EINVAL,
		  "cbtdirty of a good and a bad range");

	/* The second range on an unmapped page: EFAULT, nothing marked. */
	pages = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(pages + page, page);
	r = (struct blksnap_sectors *)(pages + page - sizeof(*r));
	r[0].offset = 16;
	r[0].count = 8;
	expect_rc(cbtdirty(dev, r, 2), EFAULT,
		  "cbtdirty with the second range unreadable");
	munmap(pages, page);

	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, NULL, 16),
		  EFAULT, "snapshotadd with a NULL id");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, buf, 15),
		  EINVAL, "snapshotadd with optlen 15");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, buf, 35),
		  EINVAL, "snapshotinfo with optlen 35");
	expect_rc(ctl(dev, BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, NULL, 36),
		  EFAULT, "snapshotinfo to NULL");

	rc = cbtmap(dev, 0, n, after);
	tap(!rc && !memcmp(before, after, n),
	    "the read map is unchanged by all the rejected requests");
	rc = cbtinfo(dev, (struct blksnap_cbtinfo *)buf);
	tap(!rc && !memcmp(buf, &info, sizeof(info)),
	    "cbtinfo is unchanged by all the rejected requests");
	return failures ? 1 : 0;
}

static int cmd_nobody(const char *dev)
{
	struct blksnap_version v;
	struct blksnap_cbtinfo info;
	struct blksnap_sectors r = { 0, 8 };
	uint8_t buf[64];
	unsigned int cmd, maj, min;

	open_ctl();
	dev_of(dev, &maj, &min);
	if (setgid(65534) || setuid(65534)) {
		perror("cbt_tool: setuid");
		return 1;
	}
	tap(getuid() == 65534 && geteuid() == 65534, "running as uid 65534");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_VERSION, &v), 0,
		  "version as nobody");
	expect_rc(simple(IOCTL_BLKSNAP_FILTER_ATTACH, dev), EPERM,
		  "attach as nobody");
	expect_rc(simple(IOCTL_BLKSNAP_FILTER_DETACH, dev), EPERM,
		  "detach as nobody");
	expect_rc(simple(IOCTL_BLKSNAP_TEST_CBT_SWITCH, dev), EPERM,
		  "test switch as nobody");
	expect_rc(cbtinfo(dev, &info), EPERM, "cbtinfo as nobody");
	expect_rc(cbtmap(dev, 0, 1, buf), EPERM, "cbtmap as nobody");
	expect_rc(cbtdirty(dev, &r, 1), EPERM, "cbtdirty as nobody");
	for (cmd = BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD; cmd <= 6; cmd++) {
		char what[64];

		snprintf(what, sizeof(what), "ctl command %u as nobody", cmd);
		memset(buf, 0, sizeof(buf));
		expect_rc(ctl(dev, cmd, buf, sizeof(buf)), EPERM, what);
	}
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle helpers                                                      */
/* ---------------------------------------------------------------------- */

static int cmd_cycles(const char *dev, long n, long pause_ms)
{
	struct blksnap_cbtinfo info;
	long i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = simple(IOCTL_BLKSNAP_FILTER_ATTACH, dev);
		if (rc) {
			fprintf(stderr, "cycle %ld: attach: %s\n", i,
				errname(-rc));
			return 1;
		}
		rc = cbtinfo(dev, &info);
		if (rc) {
			fprintf(stderr, "cycle %ld: cbtinfo: %s\n", i,
				errname(-rc));
			return 1;
		}
		rc = simple(IOCTL_BLKSNAP_FILTER_DETACH, dev);
		if (rc) {
			fprintf(stderr, "cycle %ld: detach: %s\n", i,
				errname(-rc));
			return 1;
		}
		if (pause_ms)
			usleep(pause_ms * 1000);
	}
	return 0;
}

/* N switches; prints how many were done and the slowest, in ms. */
static int cmd_switches(const char *dev, long n)
{
	struct timespec a, b;
	double worst = 0, ms;
	long i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		rc = simple(IOCTL_BLKSNAP_TEST_CBT_SWITCH, dev);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (rc)
			break;
		ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
		if (ms > worst)
			worst = ms;
	}
	printf("%ld switches, the slowest %.0f ms%s%s\n", i, worst,
	       rc ? ", then " : "", rc ? errname(-rc) : "");
	return rc ? 1 : 0;
}

/*
 * The writeswitch pattern: before switch k (k = 1..n), block k % blocks is
 * written. So after s switches (changes_number s, no wrap: s < 255) the
 * read map holds at block j < blocks the last such k <= s, and 0 elsewhere.
 */
static uint8_t writeswitch_expected(uint32_t j, uint32_t blocks, uint32_t s)
{
	uint32_t k;

	if (j >= blocks || s < j)
		return 0;
	k = s - (s - j) % blocks;
	return k >= 1 ? (uint8_t)k : 0;
}

struct writeswitch {
	const char *dev;
	long n;
	uint32_t blocks, bsize;
	int rc;
	volatile int done;
};

static void *writeswitch_run(void *arg)
{
	struct writeswitch *w = arg;
	void *buf;
	long k;
	int fd = open(w->dev, O_RDWR | O_DIRECT);

	if (fd < 0 || posix_memalign(&buf, 4096, 4096)) {
		w->rc = -errno;
		w->done = 1;
		return NULL;
	}
	memset(buf, 0x5a, 4096);
	for (k = 1; k <= w->n && !w->rc; k++) {
		off_t off = (off_t)(k % w->blocks) * w->bsize;

		if (pwrite(fd, buf, 4096, off) != 4096)
			w->rc = -errno;
		else
			w->rc = simple(IOCTL_BLKSNAP_TEST_CBT_SWITCH, w->dev);
	}
	free(buf);
	close(fd);
	w->done = 1;
	return NULL;
}

static int writeswitch_init(struct writeswitch *w, const char *dev, long n,
			    long blocks)
{
	struct blksnap_cbtinfo info;
	int rc = cbtinfo(dev, &info);

	if (rc)
		die_rc("cbtinfo", rc);
	if (info.changes_number != 0 || n < 1 || n > 254 || blocks < 1 ||
	    (uint64_t)blocks > info.block_count) {
		fprintf(stderr,
			"cbt_tool: writeswitch needs a fresh tracker, 1 <= N <= 254, BLOCKS <= %u\n",
			info.block_count);
		return 2;
	}
	memset(w, 0, sizeof(*w));
	w->dev = dev;
	w->n = n;
	w->blocks = (uint32_t)blocks;
	w->bsize = info.block_size;
	return 0;
}

static int cmd_writeswitch(const char *dev, long n, long blocks)
{
	struct writeswitch w;
	int rc = writeswitch_init(&w, dev, n, blocks);

	if (rc)
		return rc;
	writeswitch_run(&w);
	if (w.rc) {
		fprintf(stderr, "cbt_tool: writeswitch: %s\n", errname(-w.rc));
		return 1;
	}
	printf("%ld writes and switches\n", n);
	return 0;
}

/*
 * One CBTMAP request is one switch's read map (tracker_ctl.c): a request
 * that a switch overtakes while it copies fails with EAGAIN. Whole-map
 * requests race writeswitch; each must be EAGAIN or the map of a switch
 * between the CBTINFO before and after it.
 */
static int cmd_mapraces(const char *dev, long n, long blocks)
{
	struct blksnap_cbtinfo before, after;
	long reads = 0, again = 0, spanning = 0, bad = 0;
	struct timespec start, end;
	struct writeswitch w;
	pthread_t thread;
	uint8_t *map;
	int rc = writeswitch_init(&w, dev, n, blocks);

	if (rc)
		return rc;
	rc = cbtinfo(dev, &before);
	if (rc)
		die_rc("cbtinfo", rc);
	map = malloc(before.block_count);
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (!map || pthread_create(&thread, NULL, writeswitch_run, &w)) {
		perror("cbt_tool: mapraces");
		return 1;
	}
	while (!w.done) {
		uint32_t s, j, hit = 0;

		rc = cbtinfo(dev, &before);
		if (!rc)
			rc = cbtmap(dev, 0, before.block_count, map);
		if (rc == -EAGAIN) {
			again++;
			reads++;
			continue;
		}
		if (!rc)
			rc = cbtinfo(dev, &after);
		if (rc) {
			tap(0, "mapraces: a request failed with %s", errname(-rc));
			bad++;
			break;
		}
		reads++;
		if (after.changes_number != before.changes_number)
			spanning++;
		for (s = before.changes_number; s <= after.changes_number && !hit;
		     s++) {
			for (j = 0; j < before.block_count; j++)
				if (map[j] != writeswitch_expected(j, w.blocks, s))
					break;
			hit = j == before.block_count;
		}
		if (!hit && bad++ < 3)
			tap(0, "mapraces: a map read between switches %u and %u is none of theirs",
			    before.changes_number, after.changes_number);
	}
	pthread_join(thread, NULL);
	clock_gettime(CLOCK_MONOTONIC, &end);
	free(map);
	tap(!w.rc, "mapraces: %ld writes and switches%s%s", n,
	    w.rc ? ": " : "", w.rc ? errname(-w.rc) : "");
	tap(!bad && reads > 0,
	    "%ld whole-map reads raced %ld switches: each one switch's map or EAGAIN",
	    reads, n);
	printf("# %ld EAGAIN, %ld consistent across a switch, %ld bad, %.0f s\n",
	       again, spanning, bad,
	       (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9);
	return failures ? 1 : 0;
}

static uint8_t *read_file(const char *path, uint64_t size)
{
	uint8_t *p = malloc(size);
	int fd = open(path, O_RDONLY);
	uint64_t done = 0;
	ssize_t n;

	if (!p || fd < 0) {
		perror(path);
		exit(1);
	}
	while (done < size) {
		n = read(fd, p + done, size - done);
		if (n <= 0) {
			fprintf(stderr, "cbt_tool: %s: short\n", path);
			exit(1);
		}
		done += n;
	}
	close(fd);
	return p;
}

/* Every block that differs between the images must be marked > prev. */
static int cmd_imgcmp(const char *dev, const char *a, const char *b, int prev)
{
	struct blksnap_cbtinfo info;
	uint8_t *ia, *ib, *map;
	uint64_t changed = 0, marked = 0, missed = 0, i, off, len;
	int rc;

	rc = cbtinfo(dev, &info);
	if (rc)
		die_rc("cbtinfo", rc);
	map = malloc(info.block_count);
	rc = cbtmap(dev, 0, info.block_count, map);
	if (rc)
		die_rc("cbtmap", rc);
	ia = read_file(a, info.device_capacity);
	ib = read_file(b, info.device_capacity);
	for (i = 0; i < info.block_count; i++) {
		int diff;

		off = i * info.block_size;
		len = info.block_size;
		if (off + len > info.device_capacity)
			len = info.device_capacity - off;
		diff = memcmp(ia + off, ib + off, len) != 0;
		changed += diff;
		marked += map[i] > prev;
		if (diff && map[i] <= prev) {
			if (missed < 5)
				printf("# block %llu changed but not marked (%u)\n",
				       (unsigned long long)i, map[i]);
			missed++;
		}
	}
	printf("changed=%llu marked=%llu missed=%llu ratio=%.3f\n",
	       (unsigned long long)changed, (unsigned long long)marked,
	       (unsigned long long)missed,
	       changed ? (double)marked / changed : 0.0);
	return missed ? 1 : 0;
}

/* An MBR with Linux partitions at parts[2i] sectors, parts[2i+1] long. */
static int cmd_mkpart(const char *dev, const uint32_t *parts, int n)
{
	uint8_t mbr[512] = { 0 };
	int fd = open(dev, O_RDWR);
	int i;

	if (fd < 0) {
		perror(dev);
		return 1;
	}
	for (i = 0; i < n; i++) {
		uint8_t *e = mbr + 446 + 16 * i;

		e[4] = 0x83;
		memcpy(e + 8, &parts[2 * i], 4);
		memcpy(e + 12, &parts[2 * i + 1], 4);
	}
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	if (pwrite(fd, mbr, 512, 0) != 512 || fsync(fd)) {
		perror(dev);
		return 1;
	}
	if (ioctl(fd, BLKRRPART, 0))
		perror("cbt_tool: BLKRRPART");
	close(fd);
	return 0;
}

static int cmd_loop_remove(long n)
{
	int fd = open("/dev/loop-control", O_RDWR);

	if (fd < 0 || ioctl(fd, LOOP_CTL_REMOVE, n) < 0) {
		fprintf(stderr, "cbt_tool: LOOP_CTL_REMOVE %ld: %s\n", n,
			strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------------- */

static int run_simple(int argc, char **argv)
{
	const char *cmd = argv[0], *dev = argv[1];
	struct blksnap_cbtinfo info;
	int rc, i;

	if (argc < 2)
		return -1000;
	if (!strcmp(cmd, "attach"))
		return simple(IOCTL_BLKSNAP_FILTER_ATTACH, dev);
	if (!strcmp(cmd, "detach"))
		return simple(IOCTL_BLKSNAP_FILTER_DETACH, dev);
	if (!strcmp(cmd, "switch"))
		return simple(IOCTL_BLKSNAP_TEST_CBT_SWITCH, dev);
	if (!strcmp(cmd, "info")) {
		rc = cbtinfo(dev, &info);
		if (rc)
			return rc;
		printf("device_capacity=%llu block_size=%u block_count=%u changes_number=%u generation_id=",
		       (unsigned long long)info.device_capacity,
		       info.block_size, info.block_count,
		       info.changes_number);
		for (i = 0; i < 16; i++)
			printf("%02x", info.generation_id.b[i]);
		printf("\n");
		return 0;
	}
	if (!strcmp(cmd, "map")) {
		uint8_t *map;
		uint32_t j;

		rc = cbtinfo(dev, &info);
		if (rc)
			return rc;
		map = malloc(info.block_count);
		rc = cbtmap(dev, 0, info.block_count, map);
		if (rc)
			return rc;
		for (j = 0; j < info.block_count; j++)
			if (map[j])
				printf("%u %u\n", j, map[j]);
		return 0;
	}
	if (!strcmp(cmd, "dirtyall") && argc == 3) {
		uint32_t n = strtoul(argv[2], NULL, 0);
		struct blksnap_sectors *r = calloc(n ? n : 1, sizeof(*r));
		uint32_t j;

		rc = cbtinfo(dev, &info);
		if (rc)
			return rc;
		for (j = 0; j < n; j++)
			r[j].count = info.device_capacity / 512;
		return cbtdirty(dev, r, n);
	}
	if (!strcmp(cmd, "dirty")) {
		struct blksnap_sectors *r = calloc(argc, sizeof(*r));

		for (i = 2; i < argc; i++) {
			unsigned long long o, c;

			if (sscanf(argv[i], "%llu:%llu", &o, &c) != 2)
				return -1000;
			r[i - 2].offset = o;
			r[i - 2].count = c;
		}
		return cbtdirty(dev, r, argc - 2);
	}
	return -1000;
}

static int usage(void)
{
	fprintf(stderr, "usage: see the head of tests/vm/tools/cbt_tool.c\n");
	return 2;
}

int main(int argc, char **argv)
{
	int rc, want;

	if (argc < 2)
		return usage();
	argv++;
	argc--;
	if (!strcmp(argv[0], "expect") && argc >= 3) {
		want = errnum(argv[1]);
		if (want < 0)
			return usage();
		rc = run_simple(argc - 2, argv + 2);
		if (rc == -1000)
			return usage();
		if (rc != -want) {
			fprintf(stderr, "cbt_tool: %s: expected %s, got %s\n",
				argv[2], argv[1], errname(-rc));
			return 1;
		}
		return 0;
	}
	if (!strcmp(argv[0], "semantics") && argc == 2)
		return cmd_semantics(argv[1]);
	if (!strcmp(argv[0], "wrap") && argc == 2)
		return cmd_wrap(argv[1]);
	if (!strcmp(argv[0], "badinput") && argc == 2)
		return cmd_badinput(argv[1]);
	if (!strcmp(argv[0], "nobody") && argc == 2)
		return cmd_nobody(argv[1]);
	if (!strcmp(argv[0], "switches") && argc == 3)
		return cmd_switches(argv[1], atol(argv[2]));
	if (!strcmp(argv[0], "writeswitch") && argc == 4)
		return cmd_writeswitch(argv[1], atol(argv[2]), atol(argv[3]));
	if (!strcmp(argv[0], "mapraces") && argc == 4)
		return cmd_mapraces(argv[1], atol(argv[2]), atol(argv[3]));
	if (!strcmp(argv[0], "cycles") && (argc == 3 || argc == 4))
		return cmd_cycles(argv[1], atol(argv[2]),
				  argc == 4 ? atol(argv[3]) : 0);
	if (!strcmp(argv[0], "imgcmp") && argc == 5)
		return cmd_imgcmp(argv[1], argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(argv[0], "mkpart") && argc >= 4 && argc <= 10 &&
	    argc % 2 == 0) {
		uint32_t parts[8];
		int i;

		for (i = 2; i < argc; i++)
			parts[i - 2] = strtoul(argv[i], NULL, 0);
		return cmd_mkpart(argv[1], parts, (argc - 2) / 2);
	}
	if (!strcmp(argv[0], "loop_remove") && argc == 2)
		return cmd_loop_remove(atol(argv[1]));

	rc = run_simple(argc, argv);
	if (rc == -1000)
		return usage();
	if (rc) {
		fprintf(stderr, "cbt_tool: %s: %s\n", argv[0], errname(-rc));
		return 1;
	}
	return 0;
}
