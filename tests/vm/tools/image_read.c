// SPDX-License-Identifier: GPL-2.0
/*
 * image_read: reads of a snapshot image compared, byte for byte, with a
 * copy of the original taken at the take.
 *
 *   image_read scribble DEV CHUNK_SECT PARITY
 *       writes random data to the first sector of every chunk of DEV whose
 *       index has PARITY (0 or 1): on an original with a snapshot, those
 *       chunks get saved to the difference storage
 *   image_read fixed IMG COPY CHUNK_SECT
 *       a fixed set of reads: one sector to 4 MiB, at the start, end and
 *       across chunk borders, ending at the device's end (a partial last
 *       chunk when the size is not a multiple of the chunk), O_DIRECT with
 *       the buffer at several offsets into a page, and buffered reads at
 *       odd byte offsets
 *   image_read race IMG COPY ORIG CHUNK_SECT SECONDS WRITERS
 *       3 readers make random reads of IMG (sizes one sector to 4 MiB,
 *       O_DIRECT at random buffer offsets, or buffered; half of them of a
 *       chunk a writer is about to write) while WRITERS
 *       writers write random data to ORIG, 4 KiB into every chunk once, in
 *       random order (the first write into it since the take, for those
 *       not written before), spread over about SECONDS
 *
 * Every read must return exactly COPY's bytes. Exit status: 0 every read
 * matched, 1 a read failed or differed, 2 usage.
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

#define SECT 512ULL
#define MAX_READ (4ULL << 20)
#define PAGE 4096ULL

static const char *img_path, *copy_path, *orig_path;
static int copy_fd;
static uint64_t dev_bytes, chunk_bytes;
static volatile int stop;
static volatile int failed;
static uint64_t reads_done;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
/* The chunks (index + 1) writers are about to write, for readers to read at once. */
#define HOT 8
static volatile uint64_t hot[HOT];
static volatile unsigned int hot_next;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags);

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static uint64_t size_of(int fd)
{
	uint64_t size;

	if (ioctl(fd, BLKGETSIZE64, &size)) {
		off_t end = lseek(fd, 0, SEEK_END);

		if (end < 0) {
			perror("size");
			exit(1);
		}
		size = end;
	}
	return size;
}

/* Reads [@off, @off + @len) of the image and compares it. */
static int check_read(int fd, uint64_t off, uint64_t len, uint8_t *buf,
		      uint8_t *want, const char *how)
{
	uint64_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, buf + done, len - done, off + done);
		if (n <= 0) {
			fprintf(stderr, "%s read of %llu bytes at %llu: %s\n",
				how, (unsigned long long)len,
				(unsigned long long)off,
				n ? strerror(errno) : "short");
			return -1;
		}
		done += n;
	}
	if (pread(copy_fd, want, len, off) != (ssize_t)len) {
		perror("reading the copy");
		return -1;
	}
	if (memcmp(buf, want, len)) {
		uint64_t i = 0;

		while (buf[i] == want[i])
			i++;
		fprintf(stderr,
			"%s read of %llu bytes at %llu differs from the copy at byte %llu (device offset %llu, chunk %llu)\n",
			how, (unsigned long long)len, (unsigned long long)off,
			(unsigned long long)i, (unsigned long long)(off + i),
			(unsigned long long)((off + i) / chunk_bytes));
		return -1;
	}
	pthread_mutex_lock(&count_lock);
	reads_done++;
	pthread_mutex_unlock(&count_lock);
	return 0;
}

struct bufs {
	uint8_t *mem, *want;
};

static void bufs_alloc(struct bufs *b)
{
	/* A page of room to misalign the start. */
	if (posix_memalign((void **)&b->mem, PAGE, MAX_READ + PAGE) ||
	    posix_memalign((void **)&b->want, PAGE, MAX_READ)) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
}

static int scribble(const char *dev, uint64_t chunk_sect, int parity)
{
	int fd = open_or_die(dev, O_RDWR | O_DIRECT);
	uint64_t size = size_of(fd), idx, seed = 0x5eed + parity, n = 0;
	uint8_t *buf;
	size_t i;

	chunk_bytes = chunk_sect * SECT;
	if (posix_memalign((void **)&buf, PAGE, SECT))
		return 1;
	for (idx = parity; idx * chunk_bytes < size; idx += 2) {
		for (i = 0; i < SECT; i += 8)
			*(uint64_t *)(buf + i) = rnd(&seed);
		if (pwrite(fd, buf, SECT, idx * chunk_bytes) != (ssize_t)SECT) {
			perror("scribble write");
			return 1;
		}
		n++;
	}
	close(fd);
	printf("%llu chunks written\n", (unsigned long long)n);
	return 0;
}

static int fixed(void)
{
	static const uint64_t lens[] = {
		1, 2, 7, 8, 9, 127, 128, 129, 255, 256, 257, 1024, 2047,
		2048, 2049, 4096, 8191, 8192,
	};
	static const uint64_t misalign[] = { 0, 512, 1024, 3584 };
	int dfd = open_or_die(img_path, O_RDONLY | O_DIRECT);
	int bfd = open_or_die(img_path, O_RDONLY);
	uint64_t cs = chunk_bytes / SECT, dev_sect = dev_bytes / SECT;
	uint64_t starts[12];
	size_t nstarts = 0, s, l, m;
	struct bufs b;
	int bad = 0;

	bufs_alloc(&b);
	starts[nstarts++] = 0;
	starts[nstarts++] = 1;
	starts[nstarts++] = cs - 1;
	starts[nstarts++] = cs;
	starts[nstarts++] = 3 * cs - 3;
	starts[nstarts++] = 5 * cs + cs / 2;
	starts[nstarts++] = dev_sect / 2 + 1;
	for (s = 0; s < nstarts; s++)
		for (l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
			for (m = 0; m < sizeof(misalign) / sizeof(misalign[0]); m++) {
				uint64_t off = starts[s] * SECT;
				uint64_t len = lens[l] * SECT;

				if (off + len > dev_bytes)
					continue;
				bad |= check_read(dfd, off, len,
						  b.mem + misalign[m], b.want,
						  "O_DIRECT");
			}
	/* Reads that end at the device's end, the last chunk partial or not. */
	for (l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (m = 0; m < sizeof(misalign) / sizeof(misalign[0]); m++) {
			uint64_t len = lens[l] * SECT;

			if (len > dev_bytes)
				continue;
			bad |= check_read(dfd, dev_bytes - len, len,
					  b.mem + misalign[m], b.want,
					  "O_DIRECT, to the end,");
		}
	/* The whole last chunk, partial or not. */
	bad |= check_read(dfd, (dev_sect - 1) / cs * chunk_bytes,
			  dev_bytes - (dev_sect - 1) / cs * chunk_bytes, b.mem,
			  b.want, "O_DIRECT, the last chunk,");
	/* Buffered, at byte offsets no sector is aligned to. */
	for (s = 0; s < nstarts; s++)
		for (l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			uint64_t off = starts[s] * SECT + 100;
			uint64_t len = lens[l] * SECT - 33;

			if (off + len > dev_bytes)
				continue;
			bad |= check_read(bfd, off, len, b.mem + 7, b.want,
					  "buffered");
		}
	bad |= check_read(bfd, dev_bytes - 4000, 4000, b.mem, b.want,
			  "buffered, to the end,");
	close(dfd);
	close(bfd);
	printf("%llu reads matched the copy\n", (unsigned long long)reads_done);
	return bad ? 1 : 0;
}

static void *reader(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + time(NULL);
	int dfd = open_or_die(img_path, O_RDONLY | O_DIRECT);
	int bfd = open_or_die(img_path, O_RDONLY);
	uint64_t dev_sect = dev_bytes / SECT;
	struct bufs b;

	bufs_alloc(&b);
	while (!stop && !failed) {
		uint64_t r = rnd(&seed);
		/* Sizes spread over 1 sector .. 4 MiB, small ones as likely. */
		uint64_t max = 1ULL << (r % 14);
		uint64_t len = 1 + rnd(&seed) % max, off;
		int direct = rnd(&seed) % 4 != 0;

		uint64_t h = hot[rnd(&seed) % HOT];

		if (len > dev_sect)
			len = dev_sect;
		off = rnd(&seed) % (dev_sect - len + 1);
		if (rnd(&seed) % 8 == 0)
			off = dev_sect - len;	/* to the end */
		if (h && rnd(&seed) % 2) {
			/* A chunk being written: one sector to two chunks. */
			uint64_t cs = chunk_bytes / SECT;

			len = 1 + rnd(&seed) % (2 * cs);
			off = (h - 1) * cs + rnd(&seed) % cs;
			if (off + len > dev_sect)
				off = dev_sect > len ? dev_sect - len : 0;
			if (len > dev_sect)
				len = dev_sect;
		}
		if (direct) {
			if (check_read(dfd, off * SECT, len * SECT,
				       b.mem + SECT * (rnd(&seed) % 8), b.want,
				       "O_DIRECT"))
				failed = 1;
		} else {
			uint64_t boff = off * SECT + rnd(&seed) % SECT;
			uint64_t blen = len * SECT - (boff - off * SECT);

			if (check_read(bfd, boff, blen, b.mem + rnd(&seed) % 64,
				       b.want, "buffered"))
				failed = 1;
		}
	}
	close(dfd);
	close(bfd);
	free(b.mem);
	free(b.want);
	return NULL;
}

static uint64_t writers_n, pause_us;

static void *writer(void *arg)
{
	uint64_t me = (uintptr_t)arg, seed = me * 77 + 1 + time(NULL);
	uint64_t chunks = (dev_bytes + chunk_bytes - 1) / chunk_bytes;
	int fd = open_or_die(orig_path, O_RDWR | O_DIRECT);
	uint64_t i, *order;
	uint8_t *buf;

	order = malloc(chunks * sizeof(*order));
	if (!order || posix_memalign((void **)&buf, PAGE, PAGE))
		return NULL;
	for (i = 0; i < chunks; i++)
		order[i] = i;
	for (i = chunks - 1; i > 0; i--) {
		uint64_t j = rnd(&seed) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	/* Each writer its share of the chunks, one 4 KiB write in each. */
	for (i = me; i < chunks && !stop && !failed; i += writers_n) {
		uint64_t off = order[i] * chunk_bytes;
		uint64_t room = dev_bytes - off < chunk_bytes ?
				dev_bytes - off : chunk_bytes;
		size_t k;

		if (room < PAGE)
			continue;
		hot[__atomic_fetch_add(&hot_next, 1, __ATOMIC_RELAXED) % HOT] =
			order[i] + 1;
		off += (rnd(&seed) % (room / PAGE)) * PAGE;
		for (k = 0; k < PAGE; k += 8)
			*(uint64_t *)(buf + k) = rnd(&seed);
		/* Readers of the chunk get a head start. */
		usleep(rnd(&seed) % 300);
		if (pwrite(fd, buf, PAGE, off) != (ssize_t)PAGE) {
			perror("write to the original");
			failed = 1;
		}
		usleep(pause_us);
	}
	close(fd);
	free(order);
	free(buf);
	return NULL;
}

static int race(unsigned int seconds, unsigned int nwriters)
{
	pthread_t r[3], *w = calloc(nwriters, sizeof(*w));
	unsigned int i;

	uint64_t chunks = (dev_bytes + chunk_bytes - 1) / chunk_bytes;

	writers_n = nwriters;
	/* The writes spread over about SECONDS, the readers all along. */
	pause_us = (uint64_t)seconds * 1000000 * nwriters / chunks;
	for (i = 0; i < 3; i++)
		pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)(i + 1));
	for (i = 0; i < nwriters; i++)
		pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i);
	for (i = 0; i < nwriters; i++)
		pthread_join(w[i], NULL);
	/* The writers are done (or failed): a last second of reads. */
	sleep(1);
	stop = 1;
	for (i = 0; i < 3; i++)
		pthread_join(r[i], NULL);
	free(w);
	printf("%llu reads matched the copy\n", (unsigned long long)reads_done);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc == 5 && !strcmp(argv[1], "scribble"))
		return scribble(argv[2], strtoull(argv[3], NULL, 0),
				atoi(argv[4]) & 1);
	if (!((argc == 5 && !strcmp(argv[1], "fixed")) ||
	      (argc == 8 && !strcmp(argv[1], "race")))) {
		fprintf(stderr, "usage: see the header of image_read.c\n");
		return 2;
	}
	img_path = argv[2];
	copy_path = argv[3];
	copy_fd = open_or_die(copy_path, O_RDONLY);
	fd = open_or_die(img_path, O_RDONLY);
	dev_bytes = size_of(fd);
	close(fd);
	if (dev_bytes != size_of(copy_fd)) {
		fprintf(stderr, "the image has %llu bytes, the copy %llu\n",
			(unsigned long long)dev_bytes,
			(unsigned long long)size_of(copy_fd));
		return 1;
	}
	if (argv[1][0] == 'f') {
		chunk_bytes = strtoull(argv[4], NULL, 0) * SECT;
		return fixed();
	}
	orig_path = argv[4];
	chunk_bytes = strtoull(argv[5], NULL, 0) * SECT;
	return race(atoi(argv[6]), atoi(argv[7]));
}
