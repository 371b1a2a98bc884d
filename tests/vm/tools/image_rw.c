// SPDX-License-Identifier: GPL-2.0
/*
 * image_rw: writes to a snapshot image while the original is written, and
 * checks both against a model, sector by sector.
 *
 *   image_rw fill DEV                    every sector of DEV gets the
 *                                        snapshot-time pattern (generation 0)
 *   image_rw torture ORIG IMAGE SECONDS MAPFILE
 *                                        TAP: image-only writes to the first
 *                                        quarter (its CBT blocks listed in
 *                                        MAPFILE); then the rest written
 *                                        through the image and the original
 *                                        at once, random ranges across chunk
 *                                        borders, sub-page and unaligned to
 *                                        pages; then every sector of both
 *                                        checked; the read map of ORIG
 *                                        carries the image's writes
 *   image_rw cbtcheck ORIG MAPFILE       TAP: every block in MAPFILE is
 *                                        marked in ORIG's read map
 *   image_rw shutdown MOUNTPOINT         ext4/xfs shutdown without flushing
 *                                        the log (the journal needs replay)
 *
 * A sector holds its tag: "ORIG" or "IMAG", a generation or sequence
 * number, its own sector number, and filler derived from the three. The
 * per-device requests go through BLKFILTER_CTL on ORIG's fd.
 *
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>
#include <blksnap.h>

#define TOOL_NAME "image_rw"
#include "tool.h"

#define SECTOR 512
#define MAX_IO (1 << 20)

struct tag {
	char magic[4];
	uint32_t seq;
	uint64_t sector;
};

static void tag_sector(uint8_t *p, const char *magic, uint32_t seq,
		       uint64_t sector)
{
	struct tag t;
	uint32_t x = seq * 2654435761u ^ (uint32_t)sector;
	size_t i;

	memcpy(t.magic, magic, 4);
	t.seq = seq;
	t.sector = sector;
	memcpy(p, &t, sizeof(t));
	for (i = sizeof(t); i < SECTOR; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

static int sector_is(const uint8_t *p, const char *magic, uint32_t seq,
		     uint64_t sector)
{
	uint8_t want[SECTOR];

	tag_sector(want, magic, seq, sector);
	return !memcmp(p, want, SECTOR);
}

static void describe(const uint8_t *p, char *out, size_t len)
{
	struct tag t;

	memcpy(&t, p, sizeof(t));
	snprintf(out, len, "%.4s seq %u sector %llu", t.magic, t.seq,
		 (unsigned long long)t.sector);
}

static int open_direct(const char *path, uint64_t *sectors, int *lbs)
{
	uint64_t bytes;
	int fd = open(path, O_RDWR | O_DIRECT);

	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &bytes) ||
	    ioctl(fd, BLKSSZGET, lbs)) {
		fprintf(stderr, TOOL_NAME ": %s: %s\n", path, strerror(errno));
		exit(1);
	}
	*sectors = bytes / SECTOR;
	return fd;
}

static void *xalign(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len))
		exit(1);
	return p;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t sector)
{
	ssize_t n = pwrite(fd, buf, len, (off_t)(sector * SECTOR));

	return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t sector)
{
	ssize_t n = pread(fd, buf, len, (off_t)(sector * SECTOR));

	return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

static int cmd_fill(const char *path)
{
	uint64_t sectors, s;
	int lbs, fd = open_direct(path, &sectors, &lbs);
	uint8_t *buf = xalign(MAX_IO);

	for (s = 0; s < sectors; s += MAX_IO / SECTOR) {
		uint64_t n = sectors - s < MAX_IO / SECTOR ? sectors - s :
							    MAX_IO / SECTOR;
		uint64_t i;

		for (i = 0; i < n; i++)
			tag_sector(buf + i * SECTOR, "ORIG", 0, s + i);
		if (pwrite_all(fd, buf, n * SECTOR, s)) {
			perror(TOOL_NAME ": fill");
			return 1;
		}
	}
	fsync(fd);
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* torture                                                                */
/* ---------------------------------------------------------------------- */

struct writer {
	int fd;
	const char *magic;
	uint64_t first, end;	/* sectors the writer may touch */
	int lbs_sect;		/* logical block, in sectors */
	uint32_t *last;		/* per sector: the last seq written, 0 none */
	volatile int *stop;
	unsigned int seed;
	uint32_t seq;
	unsigned long writes, errors;
	int first_err;
};

static uint64_t rnd(unsigned int *seed, uint64_t n)
{
	uint64_t r = ((uint64_t)rand_r(seed) << 31) ^ (uint64_t)rand_r(seed);

	return n ? r % n : 0;
}

/* One write of @nr sectors at @s, recorded in the model on success. */
static int writer_one(struct writer *w, uint8_t *buf, uint64_t s, uint64_t nr)
{
	uint32_t seq = ++w->seq;
	uint64_t i;
	int err;

	for (i = 0; i < nr; i++)
		tag_sector(buf + i * SECTOR, w->magic, seq, s + i);
	err = pwrite_all(w->fd, buf, nr * SECTOR, s);
	w->writes++;
	if (err) {
		if (!w->errors++)
			w->first_err = err;
		return err;
	}
	for (i = 0; i < nr; i++)
		w->last[s + i] = seq;
	return 0;
}

/* A random range: aligned to the logical block, up to 1 MiB. */
static void writer_range(struct writer *w, uint64_t *s, uint64_t *nr)
{
	uint64_t lb = w->lbs_sect;
	uint64_t blocks = (w->end - w->first) / lb;
	uint64_t len = 1 + rnd(&w->seed, rnd(&w->seed, 4) ? 16 : MAX_IO /
					  (SECTOR * lb));
	uint64_t at = w->first / lb + rnd(&w->seed, blocks);

	if (at + len > w->end / lb)
		len = w->end / lb - at;
	*s = at * lb;
	*nr = len * lb;
}

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = xalign(MAX_IO);

	while (!*w->stop) {
		uint64_t s, nr;

		writer_range(w, &s, &nr);
		writer_one(w, buf, s, nr);
	}
	free(buf);
	return NULL;
}

/* Checks every sector of @fd against the model. Returns mismatches. */
static unsigned long verify(int fd, uint64_t sectors, const uint32_t *last,
			    const char *magic, const char *what)
{
	uint8_t *buf = xalign(MAX_IO);
	unsigned long bad = 0, reported = 0;
	uint64_t s;

	for (s = 0; s < sectors; s += MAX_IO / SECTOR) {
		uint64_t n = sectors - s < MAX_IO / SECTOR ? sectors - s :
							    MAX_IO / SECTOR;
		uint64_t i;

		if (pread_all(fd, buf, n * SECTOR, s)) {
			fprintf(stderr, "%s: read at %llu failed\n", what,
				(unsigned long long)s);
			bad += n;
			continue;
		}
		for (i = 0; i < n; i++) {
			uint64_t sec = s + i;
			const uint8_t *p = buf + i * SECTOR;
			int good = last[sec] ?
					   sector_is(p, magic, last[sec], sec) :
					   sector_is(p, "ORIG", 0, sec);

			if (!good) {
				char got[96];

				bad++;
				describe(p, got, sizeof(got));
				if (reported++ < 8)
					printf("# %s sector %llu: want %s seq %u, got %s\n",
					       what, (unsigned long long)sec,
					       last[sec] ? magic : "ORIG",
					       last[sec], got);
			}
		}
	}
	free(buf);
	return bad;
}

static int cbt_ctl(int fd, uint32_t cmd, void *opt, uint32_t optlen)
{
	struct blkfilter_ctl c;

	memset(&c, 0, sizeof(c));
	strcpy((char *)c.name, BLKSNAP_FILTER_NAME);
	c.cmd = cmd;
	c.optlen = optlen;
	c.opt = (uintptr_t)opt;
	return ioctl(fd, BLKFILTER_CTL, &c) ? -errno : 0;
}

/* The read map of @path: *count bytes, or NULL. */
static uint8_t *read_map(const char *path, uint32_t *count, uint32_t *bsize)
{
	struct blksnap_cbtinfo info;
	struct blksnap_cbtmap m;
	uint8_t *map;
	int fd = open(path, O_RDONLY);
	int err;

	if (fd < 0)
		return NULL;
	err = cbt_ctl(fd, BLKFILTER_CTL_BLKSNAP_CBTINFO, &info, sizeof(info));
	if (err) {
		fprintf(stderr, TOOL_NAME ": cbtinfo: %s\n", errname(-err));
		close(fd);
		return NULL;
	}
	map = calloc(1, info.block_count);
	m = (struct blksnap_cbtmap){ 0, info.block_count, (uintptr_t)map };
	err = cbt_ctl(fd, BLKFILTER_CTL_BLKSNAP_CBTMAP, &m, sizeof(m));
	close(fd);
	if (err) {
		fprintf(stderr, TOOL_NAME ": cbtmap: %s\n", errname(-err));
		free(map);
		return NULL;
	}
	*count = info.block_count;
	*bsize = info.block_size;
	return map;
}

static int cmd_torture(const char *orig, const char *image, int seconds,
		       const char *mapfile)
{
	uint64_t sectors, isectors, quarter, s;
	int lbs, ilbs;
	int ofd = open_direct(orig, &sectors, &lbs);
	int ifd = open_direct(image, &isectors, &ilbs);
	uint32_t *img_last, *orig_last, count = 0, bsize = 0, b;
	volatile int stop = 0;
	struct writer iw, ow;
	pthread_t it, ot;
	uint8_t *buf = xalign(MAX_IO), *map;
	unsigned long bad;
	FILE *f;
	int i, missing = 0, extra = 0;

	tap(isectors == sectors && ilbs == lbs,
	    "the image has the original's size and logical block (%llu sectors, %d bytes)",
	    (unsigned long long)isectors, ilbs);
	img_last = calloc(sectors, sizeof(*img_last));
	orig_last = calloc(sectors, sizeof(*orig_last));
	quarter = sectors / 4 / (lbs / SECTOR) * (lbs / SECTOR);

	iw = (struct writer){ .fd = ifd, .magic = "IMAG", .first = 0,
			      .end = quarter, .lbs_sect = lbs / SECTOR,
			      .last = img_last, .stop = &stop, .seed = 1 };
	ow = (struct writer){ .fd = ofd, .magic = "ORIG", .first = quarter,
			      .end = sectors, .lbs_sect = lbs / SECTOR,
			      .last = orig_last, .stop = &stop, .seed = 2,
			      .seq = 1000000 };

	/* Phase 1: the image alone, in the first quarter. Fixed ranges
	 * first: unaligned to pages and chunks (as upstream's test 6100),
	 * one logical block, the first and the last block of the quarter. */
	{
		const uint64_t fixed[][2] = {
			{ 126 * 2, 2048 }, { 126 * 2 + 2048, 2048 },
			{ 4096 * 2 + 2048, 2048 }, { 0, 1 }, { 7, 1 },
			{ quarter - 1, 1 },
		};

		for (i = 0; i < (int)(sizeof(fixed) / sizeof(fixed[0])); i++) {
			uint64_t at = fixed[i][0] / iw.lbs_sect * iw.lbs_sect;
			uint64_t nr = (fixed[i][1] + iw.lbs_sect - 1) /
				      iw.lbs_sect * iw.lbs_sect;

			if (at + nr <= quarter)
				writer_one(&iw, buf, at, nr);
		}
	}
	for (i = 0; i < 200; i++) {
		uint64_t at, nr;

		writer_range(&iw, &at, &nr);
		writer_one(&iw, buf, at, nr);
	}
	tap(iw.errors == 0, "%lu image-only writes in the first quarter (%lu failed, first %s)",
	    iw.writes, iw.errors, errname(-iw.first_err));

	/* The read map carries them: the image's blocks are marked, the rest
	 * of the quarter (never written since the attach) is not. */
	map = read_map(orig, &count, &bsize);
	f = fopen(mapfile, "w");
	if (map && f) {
		uint64_t spb = bsize / SECTOR;

		for (b = 0; b < count && b * spb < quarter; b++) {
			int written = 0;

			for (s = b * spb; s < (b + 1) * spb && s < quarter; s++)
				written |= img_last[s] != 0;
			if (written) {
				fprintf(f, "%u\n", b);
				missing += !map[b];
			} else {
				extra += map[b] != 0;
			}
		}
	}
	if (f)
		fclose(f);
	tap(map && !missing && !extra,
	    "the read map marks exactly the blocks the image wrote in the quarter (%d unmarked, %d extra)",
	    missing, extra);
	free(map);

	/* Phase 2: both at once in the rest. */
	iw.first = quarter;
	iw.end = sectors;
	iw.writes = 0;
	pthread_create(&it, NULL, writer_thread, &iw);
	pthread_create(&ot, NULL, writer_thread, &ow);
	sleep(seconds);
	stop = 1;
	pthread_join(it, NULL);
	pthread_join(ot, NULL);
	tap(iw.errors == 0 && ow.errors == 0,
	    "%lu image writes and %lu original writes at once (failed: %lu, %lu)",
	    iw.writes, ow.writes, iw.errors, ow.errors);

	/* Nothing cached: read the devices themselves. */
	ioctl(ofd, BLKFLSBUF, 0);
	bad = verify(ifd, sectors, img_last, "IMAG", "image");
	tap(!bad, "the image reads back its own writes and the snapshot-time data elsewhere (%lu bad sectors)",
	    bad);
	bad = verify(ofd, sectors, orig_last, "ORIG", "original");
	tap(!bad, "the original holds its own writes and its data elsewhere, none of the image's (%lu bad sectors)",
	    bad);
	free(buf);
	free(img_last);
	free(orig_last);
	close(ifd);
	close(ofd);
	return failures ? 1 : 0;
}

static int cmd_cbtcheck(const char *orig, const char *mapfile)
{
	uint32_t count, bsize, b;
	unsigned int listed = 0, unmarked = 0;
	uint8_t *map = read_map(orig, &count, &bsize);
	FILE *f = fopen(mapfile, "r");

	if (!map || !f)
		return 1;
	while (fscanf(f, "%u", &b) == 1) {
		listed++;
		if (b >= count || !map[b])
			unmarked++;
	}
	fclose(f);
	tap(listed && !unmarked,
	    "after the next switch the read map (the write map of before) marks the %u blocks the image wrote (%u unmarked)",
	    listed, unmarked);
	free(map);
	return failures ? 1 : 0;
}

/* XFS_IOC_GOINGDOWN, which ext4 answers too (EXT4_IOC_SHUTDOWN). */
#define GOINGDOWN _IOR('X', 125, uint32_t)
#define GOINGDOWN_NOLOGFLUSH 2

static int cmd_shutdown(const char *mnt)
{
	uint32_t flags = GOINGDOWN_NOLOGFLUSH;
	int fd = open(mnt, O_RDONLY);

	if (fd < 0 || ioctl(fd, GOINGDOWN, &flags)) {
		fprintf(stderr, TOOL_NAME ": shutdown %s: %s\n", mnt,
			strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "fill"))
		return cmd_fill(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "torture"))
		return cmd_torture(argv[2], argv[3], atoi(argv[4]), argv[5]);
	if (argc == 4 && !strcmp(argv[1], "cbtcheck"))
		return cmd_cbtcheck(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "shutdown"))
		return cmd_shutdown(argv[2]);
	fprintf(stderr,
		"usage: " TOOL_NAME " fill DEV | torture ORIG IMAGE SECONDS MAPFILE |\n"
		"       cbtcheck ORIG MAPFILE | shutdown MOUNTPOINT\n");
	return 2;
}
