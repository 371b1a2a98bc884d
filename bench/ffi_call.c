// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The C twin of bench/ffi_call.ts: the same work from C, to compare with.
 *
 *   ffi_call LIB call N        N calls of blksnap_lib_version() through the
 *                              library (dlopen + dlsym: a call through a
 *                              pointer, like a PLT call)
 *   ffi_call LIB ioctl N       N calls of blksnap_ctl_version() (one ioctl
 *                              each; needs the module)
 *   ffi_call LIB cbtmap DEV N  N reads of DEV's whole CBT map (needs the
 *                              module and an attached tracker)
 *   ffi_call - extents FILE SINCE BLOCKSIZE CAPACITY N
 *                              N extractions of the changed extents (blocks
 *                              with map > SINCE, coalesced, in bytes, the
 *                              last clipped to CAPACITY) from the map in FILE
 *
 * Prints one JSON line: {"op":..., "ns": per operation (median of 5), ...}.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <blksnap.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median5(double *v)
{
	qsort(v, 5, sizeof(*v), cmp_double);
	return v[2];
}

static void *sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);

	if (!p) {
		fprintf(stderr, "ffi_call: %s: %s\n", name, dlerror());
		exit(2);
	}
	return p;
}

/* Extents of blocks with map > since; returns the count, sums the bytes. */
static uint64_t extents(const uint8_t *map, uint64_t n, unsigned since,
			uint64_t bs, uint64_t capacity, uint64_t *bytes)
{
	uint64_t count = 0, total = 0, i = 0;

	while (i < n) {
		uint64_t start, off, end;

		while (i < n && map[i] <= since)
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && map[i] > since)
			i++;
		off = start * bs;
		end = i * bs;
		if (end > capacity)
			end = capacity;
		if (end > off) {
			count++;
			total += end - off;
		}
	}
	*bytes = total;
	return count;
}

int main(int argc, char **argv)
{
	double t[5];
	void *lib = NULL;

	if (argc < 4) {
		fprintf(stderr, "usage: see the top of ffi_call.c\n");
		return 2;
	}
	if (strcmp(argv[1], "-")) {
		lib = dlopen(argv[1], RTLD_NOW);
		if (!lib) {
			fprintf(stderr, "ffi_call: %s\n", dlerror());
			return 2;
		}
	}
	if (!strcmp(argv[2], "call")) {
		uint32_t (*volatile version)(void) = sym(lib, "blksnap_lib_version");
		long n = atol(argv[3]);
		uint32_t sink = 0;

		for (int r = 0; r < 5; r++) {
			double t0 = now_ns();

			for (long i = 0; i < n; i++)
				sink += version();
			t[r] = (now_ns() - t0) / n;
		}
		printf("{\"op\":\"call\",\"ns\":%.3f,\"sink\":%u}\n", median5(t), sink);
		return 0;
	}
	if (!strcmp(argv[2], "ioctl")) {
		int32_t (*open_ctl)(const char *, void **) = sym(lib, "blksnap_ctl_open");
		int32_t (*version)(void *, struct blksnap_version *) =
			sym(lib, "blksnap_ctl_version");
		void (*close_ctl)(void *) = sym(lib, "blksnap_ctl_close");
		struct blksnap_version v;
		long n = atol(argv[3]);
		void *ctl;
		int rc = open_ctl(NULL, &ctl);

		if (rc) {
			fprintf(stderr, "ffi_call: blksnap_ctl_open: %d\n", rc);
			return 1;
		}
		for (int r = 0; r < 5; r++) {
			double t0 = now_ns();

			for (long i = 0; i < n; i++)
				if (version(ctl, &v))
					return 1;
			t[r] = (now_ns() - t0) / n;
		}
		close_ctl(ctl);
		printf("{\"op\":\"ioctl\",\"ns\":%.3f}\n", median5(t));
		return 0;
	}
	if (!strcmp(argv[2], "cbtmap") && argc >= 5) {
		int32_t (*dev_open)(const char *, void **) = sym(lib, "blksnap_dev_open");
		int32_t (*cbtinfo)(void *, struct blksnap_cbtinfo *) =
			sym(lib, "blksnap_dev_cbtinfo");
		int32_t (*cbtmap)(void *, uint32_t, uint32_t, uint8_t *) =
			sym(lib, "blksnap_dev_cbtmap");
		struct blksnap_cbtinfo info;
		long n = atol(argv[4]);
		uint8_t *buf;
		void *dev;

		if (dev_open(argv[3], &dev) || cbtinfo(dev, &info))
			return 1;
		for (int r = 0; r < 5; r++) {
			double t0 = now_ns();

			/* A fresh zeroed buffer per read, as the binding allocates one. */
			for (long i = 0; i < n; i++) {
				if (cbtinfo(dev, &info))
					return 1;
				buf = calloc(info.block_count, 1);
				if (!buf || cbtmap(dev, 0, info.block_count, buf) ||
				    cbtinfo(dev, &info))
					return 1;
				free(buf);
			}
			t[r] = (now_ns() - t0) / n;
		}
		printf("{\"op\":\"cbtmap\",\"ns\":%.3f,\"blocks\":%u}\n", median5(t),
		       info.block_count);
		return 0;
	}
	if (!strcmp(argv[2], "extents") && argc >= 8) {
		FILE *f = fopen(argv[3], "rb");
		unsigned since = (unsigned)atoi(argv[4]);
		uint64_t bs = strtoull(argv[5], NULL, 10);
		uint64_t capacity = strtoull(argv[6], NULL, 10);
		long n = atol(argv[7]);
		uint64_t size, count = 0, bytes = 0;
		uint8_t *map;

		if (!f)
			return 1;
		fseek(f, 0, SEEK_END);
		size = (uint64_t)ftell(f);
		fseek(f, 0, SEEK_SET);
		map = malloc(size);
		if (fread(map, 1, size, f) != size)
			return 1;
		fclose(f);
		for (int r = 0; r < 5; r++) {
			double t0 = now_ns();

			for (long i = 0; i < n; i++)
				count = extents(map, size, since, bs, capacity, &bytes);
			t[r] = (now_ns() - t0) / n;
		}
		printf("{\"op\":\"extents\",\"ns\":%.3f,\"extents\":%llu,\"bytes\":%llu}\n",
		       median5(t), (unsigned long long)count,
		       (unsigned long long)bytes);
		free(map);
		return 0;
	}
	fprintf(stderr, "ffi_call: unknown operation %s\n", argv[2]);
	return 2;
}
