// SPDX-License-Identifier: GPL-2.0
/*
 * snap_sectors: self-describing sectors for point-in-time checks of
 * snapshot images. Each 512-byte sector holds {magic, generation, sector
 * number, sequence, payload, checksum}, so a sector read anywhere tells
 * where it belongs and which write produced it.
 *
 *   snap_sectors fill DEV GEN            write every sector, seq 0
 *   snap_sectors check DEV GEN           every sector: valid, in place, of
 *                                        generation GEN, seq 0 (an image)
 *   snap_sectors torture DEV IMG GEN SECONDS THREADS CHUNK_SECT
 *       random writes to DEV (generation GEN+1): sector 0 again and again,
 *       random ranges, ranges across chunk borders, first/last sectors of
 *       chunks; while a reader checks random ranges of IMG. Then every
 *       sector of IMG must be as filled (GEN, seq 0) and every sector of DEV
 *       what was last written there.
 *   snap_sectors boundary DEV IMG GEN CHUNK_SECT COUNT
 *       writes of the first/last sector of COUNT random chunks and 2-sector
 *       writes across chunk borders; checks neighbours on DEV and IMG.
 *   snap_sectors overflow DEV IMG GEN SECONDS THREADS CHUNK_SECT
 *       torture while the difference storage overflows: image reads may
 *       fail with EIO once it did (at least one must), but a read that
 *       succeeds must be all take-time sectors; DEV must be exact.
 *   snap_sectors firsttouch DEV IMG GEN THREADS CHUNK_SECT
 *       THREADS writers each write one logical block into chunks of DEV
 *       never written since the take (every chunk once, in random order),
 *       while two readers read from IMG the very chunks being written;
 *       then IMG must be as filled and DEV what was written.
 *
 * Devices are opened with O_DIRECT. Exit status: 0 pass, 1 fail, 2 usage.
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
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#define SECT 512
#define MAGIC 0x534e41505345435aULL /* "SNAPSECZ" */
#define IO_MAX (1 << 20)

/* Sectors per logical block of the devices (BLKSSZGET), for O_DIRECT. */
static uint64_t lbs_sect = 1;

struct sector {
	uint64_t magic;
	uint64_t gen;
	uint64_t sector;
	uint64_t seq;
	uint8_t payload[SECT - 5 * 8];
	uint64_t sum;
};

_Static_assert(sizeof(struct sector) == SECT, "sector size");

static uint64_t fnv(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

static void make_sector(struct sector *s, uint64_t gen, uint64_t sector,
			uint64_t seq)
{
	uint64_t x = sector * 0x9e3779b97f4a7c15ULL ^ seq ^ (gen << 48);
	size_t i;

	s->magic = MAGIC;
	s->gen = gen;
	s->sector = sector;
	s->seq = seq;
	for (i = 0; i < sizeof(s->payload); i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		s->payload[i] = x >> 56;
	}
	s->sum = fnv(s, SECT - 8);
}

/* 0: valid and in place; 1: bad checksum/magic; 2: misplaced. */
static int sector_state(const struct sector *s, uint64_t sector)
{
	if (s->magic != MAGIC || s->sum != fnv(s, SECT - 8))
		return 1;
	if (s->sector != sector)
		return 2;
	return 0;
}

static int open_dev(const char *path, int flags, uint64_t *nr_sect)
{
	int fd = open(path, flags | O_DIRECT);
	uint64_t bytes;

	if (fd < 0) {
		fprintf(stderr, "snap_sectors: %s: %s\n", path,
			strerror(errno));
		exit(1);
	}
	if (ioctl(fd, BLKGETSIZE64, &bytes)) {
		fprintf(stderr, "snap_sectors: %s: BLKGETSIZE64: %s\n", path,
			strerror(errno));
		exit(1);
	}
	*nr_sect = bytes / SECT;
	{
		int ss = 512;

		if (!ioctl(fd, BLKSSZGET, &ss) && ss / SECT > (int)lbs_sect)
			lbs_sect = ss / SECT;
	}
	return fd;
}

static void *xalloc(size_t n)
{
	void *p;

	if (posix_memalign(&p, 4096, n)) {
		fprintf(stderr, "snap_sectors: out of memory\n");
		exit(1);
	}
	return p;
}

static int fill(const char *dev, uint64_t gen)
{
	uint64_t nr, s;
	int fd = open_dev(dev, O_WRONLY, &nr);
	struct sector *buf = xalloc(IO_MAX);

	for (s = 0; s < nr;) {
		uint64_t n = nr - s < IO_MAX / SECT ? nr - s : IO_MAX / SECT;
		uint64_t i;

		for (i = 0; i < n; i++)
			make_sector(&buf[i], gen, s + i, 0);
		if (pwrite(fd, buf, n * SECT, s * SECT) != (ssize_t)(n * SECT)) {
			fprintf(stderr, "fill: write at %llu: %s\n",
				(unsigned long long)s, strerror(errno));
			return 1;
		}
		s += n;
	}
	fsync(fd);
	close(fd);
	free(buf);
	printf("filled %llu sectors of %s, generation %llu\n",
	       (unsigned long long)nr, dev, (unsigned long long)gen);
	return 0;
}

/*
 * Checks n sectors read into buf from sector s: each valid, in place, and
 * with (gen, seq) as given by expect (NULL: gen, seq 0). Returns mismatches.
 */
static uint64_t check_buf(const char *name, const struct sector *buf,
			  uint64_t s, uint64_t n, uint64_t gen,
			  const uint64_t *expect, uint64_t reported, int verbose)
{
	uint64_t bad = 0, i;

	for (i = 0; i < n; i++) {
		uint64_t want_seq = expect ? expect[s + i] >> 8 : 0;
		uint64_t want_gen = expect ? expect[s + i] & 0xff : gen;
		int st = sector_state(&buf[i], s + i);

		if (st || buf[i].seq != want_seq || buf[i].gen != want_gen) {
			if (verbose && reported + bad < 10)
				fprintf(stderr,
					"%s: sector %llu: %s (gen %llu seq %llu, want gen %llu seq %llu)\n",
					name, (unsigned long long)(s + i),
					st == 1 ? "corrupt" :
					st == 2 ? "misplaced" : "stale/new",
					(unsigned long long)buf[i].gen,
					(unsigned long long)buf[i].seq,
					(unsigned long long)want_gen,
					(unsigned long long)want_seq);
			bad++;
		}
	}
	return bad;
}

/* Reads and checks [from, from+count) of fd (see check_buf()). */
static uint64_t check_range(int fd, const char *name, uint64_t from,
			    uint64_t count, uint64_t gen,
			    const uint64_t *expect, struct sector *buf,
			    int verbose)
{
	uint64_t bad = 0, s = from, end = from + count;

	while (s < end) {
		uint64_t n = end - s < IO_MAX / SECT ? end - s : IO_MAX / SECT;
		ssize_t r = pread(fd, buf, n * SECT, s * SECT);

		if (r != (ssize_t)(n * SECT)) {
			if (verbose)
				fprintf(stderr, "%s: read at %llu: %s\n", name,
					(unsigned long long)s,
					r < 0 ? strerror(errno) : "short");
			return bad + n;
		}
		bad += check_buf(name, buf, s, n, gen, expect, bad, verbose);
		s += n;
	}
	return bad;
}

static int check(const char *dev, uint64_t gen)
{
	uint64_t nr, bad;
	int fd = open_dev(dev, O_RDONLY, &nr);
	struct sector *buf = xalloc(IO_MAX);

	bad = check_range(fd, dev, 0, nr, gen, NULL, buf, 1);
	printf("checked %llu sectors of %s: %llu bad\n",
	       (unsigned long long)nr, dev, (unsigned long long)bad);
	close(fd);
	free(buf);
	return bad ? 1 : 0;
}

/* ---- torture ---- */

struct torture {
	int fd, img;
	uint64_t nr, gen, chunk;
	uint64_t nchunks;
	uint64_t *expect;	/* (seq << 8) | gen per sector */
	pthread_mutex_t *locks;	/* one per chunk */
	uint64_t seq;		/* atomic */
	volatile int stop;
	uint64_t writes, img_reads, img_bad, img_eio;
	const char *img_name;
	int failed;
	int allow_eio;	/* overflow: a failed image read is no error */
};

static uint64_t rnd(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

static int do_write(struct torture *t, uint64_t s, uint64_t n,
		    struct sector *buf)
{
	uint64_t c0, c1, c, i, seq;

	/* Whole logical blocks only (O_DIRECT). */
	n += s % lbs_sect;
	s -= s % lbs_sect;
	n = (n + lbs_sect - 1) / lbs_sect * lbs_sect;
	if (s >= t->nr)
		return 0;
	if (s + n > t->nr)
		n = t->nr - s;
	c0 = s / t->chunk;
	c1 = (s + n - 1) / t->chunk;
	for (c = c0; c <= c1; c++)
		pthread_mutex_lock(&t->locks[c]);
	seq = __atomic_add_fetch(&t->seq, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < n; i++)
		make_sector(&buf[i], t->gen + 1, s + i, seq);
	if (pwrite(t->fd, buf, n * SECT, s * SECT) != (ssize_t)(n * SECT)) {
		fprintf(stderr, "torture: write %llu+%llu: %s\n",
			(unsigned long long)s, (unsigned long long)n,
			strerror(errno));
		t->failed = 1;
	} else {
		for (i = 0; i < n; i++)
			t->expect[s + i] = (seq << 8) | ((t->gen + 1) & 0xff);
	}
	for (c = c0; c <= c1; c++)
		pthread_mutex_unlock(&t->locks[c]);
	__atomic_add_fetch(&t->writes, 1, __ATOMIC_RELAXED);
	return 0;
}

static void *writer(void *arg)
{
	struct torture *t = arg;
	struct sector *buf = xalloc(512 * SECT);
	uint64_t st = (uint64_t)(uintptr_t)&buf ^ time(NULL) ^ 0x1234567;

	while (!t->stop && !t->failed) {
		uint64_t kind = rnd(&st) % 6;
		uint64_t c = rnd(&st) % t->nchunks;
		uint64_t n = 1 + rnd(&st) % 256;

		switch (kind) {
		case 0: /* sector 0 */
			do_write(t, 0, 1 + rnd(&st) % 8, buf);
			break;
		case 1: /* random range */
			do_write(t, rnd(&st) % t->nr, n, buf);
			break;
		case 2: /* across a chunk border */
			if (c + 1 < t->nchunks)
				do_write(t, (c + 1) * t->chunk - 1 -
					 rnd(&st) % 8, 2 + rnd(&st) % 16, buf);
			break;
		case 3: /* first sector of a chunk */
			do_write(t, c * t->chunk, 1, buf);
			break;
		case 4: /* last sector of a chunk */
			do_write(t, (c + 1) * t->chunk - 1, 1, buf);
			break;
		default: /* a whole chunk */
			do_write(t, c * t->chunk,
				 t->chunk < 256 ? t->chunk : 256, buf);
			break;
		}
	}
	free(buf);
	return NULL;
}

static void *img_reader(void *arg)
{
	struct torture *t = arg;
	struct sector *buf = xalloc(IO_MAX);
	uint64_t st = 0xabcdef12345ULL ^ time(NULL);

	while (!t->stop) {
		uint64_t s = rnd(&st) % t->nr;
		uint64_t n = 1 + rnd(&st) % 512;

		n += s % lbs_sect;
		s -= s % lbs_sect;
		n = (n + lbs_sect - 1) / lbs_sect * lbs_sect;
		if (s + n > t->nr)
			n = t->nr - s;
		if (t->allow_eio) {
			ssize_t r = pread(t->img, buf, n * SECT, s * SECT);

			if (r < 0 && errno == EIO) {
				t->img_eio++;
				continue;
			}
			t->img_bad += r == (ssize_t)(n * SECT) ?
				check_buf(t->img_name, buf, s, n, t->gen, NULL,
					  t->img_bad, 1) : n;
		} else {
			t->img_bad += check_range(t->img, t->img_name, s, n,
						  t->gen, NULL, buf, 1);
		}
		t->img_reads++;
	}
	free(buf);
	return NULL;
}

/*
 * Open the device (read-write) and its image (read-only) for torture or
 * boundary, and set up the expected generation of every sector (the fill's)
 * and one lock per chunk. Returns the image's size in sectors.
 */
static uint64_t torture_open(struct torture *t, const char *dev,
			     const char *img, uint64_t gen, uint64_t chunk)
{
	uint64_t nr_img, i;

	t->fd = open_dev(dev, O_RDWR, &t->nr);
	t->img = open_dev(img, O_RDONLY, &nr_img);
	t->img_name = img;
	t->gen = gen;
	t->chunk = chunk;
	t->nchunks = (t->nr + chunk - 1) / chunk;
	t->expect = calloc(t->nr, sizeof(*t->expect));
	t->locks = calloc(t->nchunks, sizeof(*t->locks));
	for (i = 0; i < t->nr; i++)
		t->expect[i] = gen & 0xff;
	for (i = 0; i < t->nchunks; i++)
		pthread_mutex_init(&t->locks[i], NULL);
	return nr_img;
}

static int torture(const char *dev, const char *img, uint64_t gen,
		   int seconds, int threads, uint64_t chunk)
{
	struct torture t = { 0 };
	pthread_t *th = calloc(threads + 1, sizeof(*th));
	struct sector *buf = xalloc(IO_MAX);
	uint64_t nr_img, bad_img, bad_dev;
	int k;

	nr_img = torture_open(&t, dev, img, gen, chunk);
	if (nr_img != t.nr) {
		fprintf(stderr, "torture: image has %llu sectors, device %llu\n",
			(unsigned long long)nr_img, (unsigned long long)t.nr);
		return 1;
	}

	for (k = 0; k < threads; k++)
		pthread_create(&th[k], NULL, writer, &t);
	pthread_create(&th[threads], NULL, img_reader, &t);
	sleep(seconds);
	t.stop = 1;
	for (k = 0; k <= threads; k++)
		pthread_join(th[k], NULL);

	bad_img = check_range(t.img, img, 0, t.nr, gen, NULL, buf, 1);
	bad_dev = check_range(t.fd, dev, 0, t.nr, gen, t.expect, buf, 1);
	printf("torture: logical block %llu sectors, %llu writes (%d threads), %llu concurrent image reads with %llu bad sectors; image: %llu bad of %llu; device: %llu bad\n",
	       (unsigned long long)lbs_sect,
	       (unsigned long long)t.writes, threads,
	       (unsigned long long)t.img_reads, (unsigned long long)t.img_bad,
	       (unsigned long long)bad_img, (unsigned long long)t.nr,
	       (unsigned long long)bad_dev);
	return (t.failed || t.img_bad || bad_img || bad_dev || !t.writes) ?
	       1 : 0;
}

/*
 * Torture through an overflow: every successful image read must show the
 * take, the device must be exact, and the image must have failed at least
 * once with EIO.
 */
static int overflow(const char *dev, const char *img, uint64_t gen,
		    int seconds, int threads, uint64_t chunk)
{
	struct torture t = { 0 };
	pthread_t *th = calloc(threads + 1, sizeof(*th));
	struct sector *buf = xalloc(IO_MAX);
	uint64_t bad_dev;
	int k;

	torture_open(&t, dev, img, gen, chunk);
	t.allow_eio = 1;
	for (k = 0; k < threads; k++)
		pthread_create(&th[k], NULL, writer, &t);
	pthread_create(&th[threads], NULL, img_reader, &t);
	sleep(seconds);
	t.stop = 1;
	for (k = 0; k <= threads; k++)
		pthread_join(th[k], NULL);
	bad_dev = check_range(t.fd, dev, 0, t.nr, gen, t.expect, buf, 1);
	printf("overflow: %llu writes (%d threads); image reads: %llu checked, %llu bad sectors, %llu failed with EIO; device: %llu bad\n",
	       (unsigned long long)t.writes, threads,
	       (unsigned long long)t.img_reads, (unsigned long long)t.img_bad,
	       (unsigned long long)t.img_eio, (unsigned long long)bad_dev);
	return (t.failed || t.img_bad || bad_dev || !t.writes ||
		!t.img_eio) ? 1 : 0;
}

static int boundary(const char *dev, const char *img, uint64_t gen,
		    uint64_t chunk, int count)
{
	struct torture t = { 0 };
	struct sector *buf = xalloc(IO_MAX);
	uint64_t st = 0x5eed ^ time(NULL), bad_img, bad_dev;
	int k;

	torture_open(&t, dev, img, gen, chunk);

	/* The very first and last sectors, then random chunks. */
	do_write(&t, 0, 1, buf);
	do_write(&t, t.nr - 1, 1, buf);
	for (k = 0; k < count; k++) {
		uint64_t c = rnd(&st) % t.nchunks;

		do_write(&t, c * chunk, 1, buf);
		do_write(&t, (c + 1) * chunk - 1, 1, buf);
		if (c + 1 < t.nchunks)
			do_write(&t, (c + 1) * chunk - 1, 2, buf);
	}
	bad_img = check_range(t.img, img, 0, t.nr, gen, NULL, buf, 1);
	bad_dev = check_range(t.fd, dev, 0, t.nr, gen, t.expect, buf, 1);
	printf("boundary: %llu writes; image: %llu bad; device: %llu bad\n",
	       (unsigned long long)t.writes, (unsigned long long)bad_img,
	       (unsigned long long)bad_dev);
	return (t.failed || bad_img || bad_dev) ? 1 : 0;
}

/* ---- firsttouch ---- */

struct first_touch {
	struct torture t;
	uint64_t *order;	/* the chunks, shuffled */
	uint64_t next;		/* atomic: the next entry of order to write */
	int writers_left;	/* atomic */
};

static void *first_writer(void *arg)
{
	struct first_touch *f = arg;
	struct torture *t = &f->t;
	struct sector *buf = xalloc(512 * SECT);
	uint64_t st = (uint64_t)(uintptr_t)&buf ^ time(NULL) ^ 0x5a5a5a;
	uint64_t i, blocks = t->chunk / lbs_sect;

	while (!t->failed) {
		i = __atomic_fetch_add(&f->next, 1, __ATOMIC_SEQ_CST);
		if (i >= t->nchunks)
			break;
		do_write(t, f->order[i] * t->chunk +
			 rnd(&st) % (blocks ? blocks : 1) * lbs_sect, lbs_sect,
			 buf);
	}
	__atomic_sub_fetch(&f->writers_left, 1, __ATOMIC_SEQ_CST);
	free(buf);
	return NULL;
}

static void *first_reader(void *arg)
{
	struct first_touch *f = arg;
	struct torture *t = &f->t;
	struct sector *buf = xalloc(IO_MAX);
	uint64_t st = (uint64_t)(uintptr_t)&buf ^ time(NULL) ^ 0xa5a5a5;

	while (__atomic_load_n(&f->writers_left, __ATOMIC_SEQ_CST)) {
		/* A chunk being written now, or about to be. */
		uint64_t i = __atomic_load_n(&f->next, __ATOMIC_SEQ_CST) +
			     rnd(&st) % 4;
		uint64_t c = f->order[i < t->nchunks ? i : t->nchunks - 1];
		uint64_t n = t->chunk;

		if (c * t->chunk + n > t->nr)
			n = t->nr - c * t->chunk;
		__atomic_add_fetch(&t->img_bad,
				   check_range(t->img, t->img_name,
					       c * t->chunk, n, t->gen, NULL,
					       buf, 1), __ATOMIC_RELAXED);
		__atomic_add_fetch(&t->img_reads, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	return NULL;
}

static int first_touch(const char *dev, const char *img, uint64_t gen,
		       int threads, uint64_t chunk)
{
	struct first_touch f = { 0 };
	struct torture *t = &f.t;
	pthread_t *th = calloc(threads + 2, sizeof(*th));
	struct sector *buf = xalloc(IO_MAX);
	uint64_t st = 0x9e3779b97f4a7c15ULL ^ time(NULL);
	uint64_t bad_img, bad_dev, i, j, tmp;
	int k;

	if (torture_open(t, dev, img, gen, chunk) != t->nr)
		return 1;
	f.order = calloc(t->nchunks, sizeof(*f.order));
	for (i = 0; i < t->nchunks; i++)
		f.order[i] = i;
	for (i = t->nchunks - 1; i > 0; i--) {
		j = rnd(&st) % (i + 1);
		tmp = f.order[i];
		f.order[i] = f.order[j];
		f.order[j] = tmp;
	}
	f.writers_left = threads;
	for (k = 0; k < threads; k++)
		pthread_create(&th[k], NULL, first_writer, &f);
	for (k = threads; k < threads + 2; k++)
		pthread_create(&th[k], NULL, first_reader, &f);
	for (k = 0; k < threads + 2; k++)
		pthread_join(th[k], NULL);

	bad_img = check_range(t->img, img, 0, t->nr, gen, NULL, buf, 1);
	bad_dev = check_range(t->fd, dev, 0, t->nr, gen, t->expect, buf, 1);
	printf("firsttouch: %llu first-touch writes (%d threads) into %llu chunks, %llu concurrent image reads of those chunks with %llu bad sectors; image: %llu bad of %llu; device: %llu bad\n",
	       (unsigned long long)t->writes, threads,
	       (unsigned long long)t->nchunks,
	       (unsigned long long)t->img_reads,
	       (unsigned long long)t->img_bad, (unsigned long long)bad_img,
	       (unsigned long long)t->nr, (unsigned long long)bad_dev);
	return (t->failed || t->img_bad || bad_img || bad_dev ||
		t->writes != t->nchunks || !t->img_reads) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "fill"))
		return fill(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "check"))
		return check(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 8 && !strcmp(argv[1], "torture"))
		return torture(argv[2], argv[3], strtoull(argv[4], NULL, 0),
			       atoi(argv[5]), atoi(argv[6]),
			       strtoull(argv[7], NULL, 0));
	if (argc == 8 && !strcmp(argv[1], "overflow"))
		return overflow(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				atoi(argv[5]), atoi(argv[6]),
				strtoull(argv[7], NULL, 0));
	if (argc == 7 && !strcmp(argv[1], "firsttouch"))
		return first_touch(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				   atoi(argv[5]), strtoull(argv[6], NULL, 0));
	if (argc == 7 && !strcmp(argv[1], "boundary"))
		return boundary(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				strtoull(argv[5], NULL, 0), atoi(argv[6]));
	fprintf(stderr, "usage: see the header of snap_sectors.c\n");
	return 2;
}
