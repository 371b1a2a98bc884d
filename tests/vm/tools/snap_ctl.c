// SPDX-License-Identifier: GPL-2.0
/*
 * snap_ctl: drives the snapshot ioctls of /dev/blksnap-control for the VM
 * suites.
 *
 *   snap_ctl attach DEV | detach DEV
 *   snap_ctl create PATH LIMIT_SECT      prints the snapshot id
 *   snap_ctl add ID DEV
 *   snap_ctl take ID | destroy ID
 *   snap_ctl collect                     one id per line
 *   snap_ctl info DEV                    "error_code=N image=NAME"
 *   snap_ctl image DEV                   "/dev/NAME" (empty: fails)
 *   snap_ctl wait ID TIMEOUT_MS          "event=corrupted dev=M:m err=N",
 *                                        "event=no_space sectors=N", or fails
 *                                        with "result=timeout|..."
 *   snap_ctl expect ERRNAME CMD ARGS...  passes when CMD fails with ERRNAME
 *                                        (OK: succeeds)
 *   snap_ctl badinput DIR                TAP: bad input to the control device
 *   snap_ctl nobody ID DEV               TAP: mutating requests as uid 65534
 *   snap_ctl faulty CMD ARGS...          CMD with /proc/self/make-it-fail set
 *                                        during its ioctls only (failslab)
 *
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <blksnap.h>

#define TOOL_NAME "snap_ctl"
#include "tool.h"

/* "faulty": /proc/self/make-it-fail is set around each ioctl only. */
static int faulty_fd = -1;

static int do_ioctl(unsigned long nr, void *arg)
{
	int rc;

	open_ctl();
	if (faulty_fd >= 0 && pwrite(faulty_fd, "1", 1, 0) != 1)
		return -EIO;
	rc = ioctl(ctl_fd, nr, arg) ? -errno : 0;
	if (faulty_fd >= 0 && pwrite(faulty_fd, "0", 1, 0) != 1)
		return -EIO;
	return rc;
}

static void dev_of(const char *path, unsigned int *maj, unsigned int *min)
{
	struct stat st;

	if (stat(path, &st) || !S_ISBLK(st.st_mode)) {
		fprintf(stderr, "snap_ctl: %s: not a block device\n", path);
		exit(2);
	}
	*maj = major(st.st_rdev);
	*min = minor(st.st_rdev);
}

static int filter(unsigned long nr, const char *dev, unsigned int cmd,
		  void *opt, unsigned int len)
{
	struct blksnap_filter_request req;

	memset(&req, 0, sizeof(req));
	dev_of(dev, &req.dev_major, &req.dev_minor);
	strcpy((char *)req.name, BLKSNAP_FILTER_NAME);
	req.cmd = cmd;
	req.opt = (uintptr_t)opt;
	req.optlen = len;
	return do_ioctl(nr, &req);
}

static void uuid_print(const struct blksnap_uuid *id)
{
	int i;

	for (i = 0; i < 16; i++)
		printf("%02x", id->b[i]);
	printf("\n");
}

static int cmd_create(const char *path, unsigned long long limit,
		      struct blksnap_uuid *id)
{
	struct blksnap_snapshot_create arg = {
		.diff_storage_limit_sect = limit,
		.diff_storage_filename = (uintptr_t)path,
	};
	int rc = do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &arg);

	if (!rc && id)
		*id = arg.id;
	return rc;
}

static int cmd_info(const char *dev, struct blksnap_snapshotinfo *info)
{
	memset(info, 0, sizeof(*info));
	return filter(IOCTL_BLKSNAP_FILTER_CTL, dev,
		      BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, info, sizeof(*info));
}

static int cmd_wait(const struct blksnap_uuid *id, unsigned int ms,
		    struct blksnap_snapshot_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = *id;
	ev->timeout_ms = ms;
	return do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, ev);
}

static void print_event(const struct blksnap_snapshot_event *ev)
{
	if (ev->code == blksnap_event_code_corrupted) {
		const struct blksnap_event_corrupted *c = (const void *)ev->data;

		printf("event=corrupted dev=%u:%u err=%d\n", c->dev_id_mj,
		       c->dev_id_mn, c->err_code);
	} else if (ev->code == blksnap_event_code_no_space) {
		const struct blksnap_event_no_space *n = (const void *)ev->data;

		printf("event=no_space sectors=%llu\n",
		       (unsigned long long)n->requested_nr_sect);
	} else {
		printf("event=%u\n", ev->code);
	}
}

/* Runs one command; returns 0 or -errno. */
static int run(int argc, char **argv)
{
	const char *c = argv[0];
	struct blksnap_uuid id;

	if (!strcmp(c, "attach") && argc == 2)
		return filter(IOCTL_BLKSNAP_FILTER_ATTACH, argv[1], 0, NULL, 0);
	if (!strcmp(c, "detach") && argc == 2)
		return filter(IOCTL_BLKSNAP_FILTER_DETACH, argv[1], 0, NULL, 0);
	if (!strcmp(c, "create") && argc == 3) {
		int rc = cmd_create(argv[1], strtoull(argv[2], NULL, 0), &id);

		if (!rc)
			uuid_print(&id);
		return rc;
	}
	if (!strcmp(c, "add") && argc == 3) {
		struct blksnap_snapshotadd arg;

		uuid_parse(argv[1], &arg.id);
		return filter(IOCTL_BLKSNAP_FILTER_CTL, argv[2],
			      BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, &arg,
			      sizeof(arg));
	}
	if (!strcmp(c, "take") && argc == 2) {
		uuid_parse(argv[1], &id);
		return do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id);
	}
	if (!strcmp(c, "destroy") && argc == 2) {
		uuid_parse(argv[1], &id);
		return do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id);
	}
	if (!strcmp(c, "collect") && argc == 1) {
		struct blksnap_snapshot_collect arg = { 0 };
		struct blksnap_uuid *ids;
		unsigned int i;
		int rc = do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &arg);

		if (rc)
			return rc;
		ids = calloc(arg.count + 1, sizeof(*ids));
		arg.ids = (uintptr_t)ids;
		rc = do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &arg);
		if (rc)
			return rc;
		for (i = 0; i < arg.count; i++)
			uuid_print(&ids[i]);
		free(ids);
		return 0;
	}
	if (!strcmp(c, "info") && argc == 2) {
		struct blksnap_snapshotinfo info;
		int rc = cmd_info(argv[1], &info);

		if (!rc)
			printf("error_code=%d image=%.32s\n", info.error_code,
			       (char *)info.image);
		return rc;
	}
	if (!strcmp(c, "image") && argc == 2) {
		struct blksnap_snapshotinfo info;
		int rc = cmd_info(argv[1], &info);

		if (rc)
			return rc;
		if (!info.image[0])
			return -ENOENT;
		printf("/dev/%.32s\n", (char *)info.image);
		return 0;
	}
	if (!strcmp(c, "wait") && argc == 3) {
		static struct blksnap_snapshot_event ev;
		int rc;

		uuid_parse(argv[1], &id);
		rc = cmd_wait(&id, strtoul(argv[2], NULL, 0), &ev);
		if (!rc)
			print_event(&ev);
		else
			printf("result=%s\n", rc == -ENOENT ? "timeout" :
			       rc == -EINTR ? "interrupted" :
			       rc == -ESRCH ? "not found" : errname(-rc));
		return rc;
	}
	fprintf(stderr, "snap_ctl: bad command '%s' (%d args)\n", c, argc);
	exit(2);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void badinput(const char *dir)
{
	static struct blksnap_snapshot_event ev;
	struct blksnap_snapshot_create cr;
	struct blksnap_uuid unknown, id;
	struct blksnap_snapshot_collect col;
	char *longpath, *page;
	double t0, dt;
	int rc;

	memset(&unknown, 0x5a, sizeof(unknown));
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &unknown), ESRCH,
		  "take of an unknown id");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &unknown), ENODEV,
		  "destroy of an unknown id");
	expect_rc(cmd_wait(&unknown, 10, &ev), ESRCH,
		  "wait-event of an unknown id");
	expect_rc(cmd_create(dir, 0, NULL), EINVAL, "create with limit 0");
	expect_rc(cmd_create("/dev/null", 1 << 20, NULL), EINVAL,
		  "create on a character device");
	expect_rc(cmd_create("/nonexistent/x", 1 << 20, NULL), ENOENT,
		  "create on a missing path");
	memset(&cr, 0, sizeof(cr));
	cr.diff_storage_limit_sect = 1 << 20;
	cr.diff_storage_filename = 0x10;
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &cr), EFAULT,
		  "create with a bad path pointer");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, (void *)0x10),
		  EFAULT, "create with a bad argument pointer");

	/* PATH_MAX+1 bytes without a NUL: strndup_user refuses. */
	longpath = malloc(PATH_MAX + 1);
	memset(longpath, 'a', PATH_MAX + 1);
	cr.diff_storage_filename = (uintptr_t)longpath;
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &cr), EINVAL,
		  "create with a PATH_MAX+1 path");
	free(longpath);
	/* A path running into an unmapped page without a NUL. */
	page = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(page + 4096, 4096);
	memset(page, 'b', 4096);
	cr.diff_storage_filename = (uintptr_t)(page + 4096 - 100);
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &cr), EFAULT,
		  "create with an unterminated path at a page end");
	munmap(page, 4096);

	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, (void *)0x10),
		  EFAULT, "collect with a bad argument pointer");

	rc = cmd_create(dir, 1 << 20, &id);
	expect_rc(rc, 0, "create in a directory");
	if (!rc) {
		expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id), ENODEV,
			  "take of a snapshot without devices");
		memset(&col, 0, sizeof(col));
		rc = do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &col);
		tap(!rc && col.count >= 1, "collect counts it (%u)", col.count);
		col.ids = (uintptr_t)&unknown;
		col.count = 0;
		rc = do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &col);
		tap(rc == -ENODATA && col.count == 0,
		    "collect into a zero-size array gives ENODATA");

		t0 = now_ms();
		rc = cmd_wait(&id, 300, &ev);
		dt = now_ms() - t0;
		/*
		 * Milliseconds, not seconds nor at once; the emulated
		 * guest's clocks drift, so no tighter bound.
		 */
		tap(rc == -ENOENT && dt >= 200 && dt < 3000,
		    "wait-event 300 ms times out with ENOENT after %.0f ms", dt);
		t0 = now_ms();
		rc = cmd_wait(&id, 0, &ev);
		dt = now_ms() - t0;
		tap(rc == -ENOENT && dt < 1000,
		    "wait-event 0 ms returns ENOENT at once (%.0f ms)", dt);
		expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
				   (void *)0x10), EFAULT,
			  "wait-event with a bad pointer");
		{
			struct sigaction sa;

			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = on_alarm;	/* no SA_RESTART */
			sigaction(SIGALRM, &sa, NULL);
			alarm(1);
			t0 = now_ms();
			rc = cmd_wait(&id, 20000, &ev);
			dt = now_ms() - t0;
			tap(rc == -EINTR && dt < 5000,
			    "a signal interrupts wait-event with EINTR (%.0f ms)",
			    dt);
		}
		expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id), 0,
			  "destroy");
		expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id), ENODEV,
			  "destroy twice");
	}
}

static void nobody(const char *ids, const char *dev)
{
	static struct blksnap_snapshot_event ev;
	struct blksnap_snapshot_collect col = { 0 };
	struct blksnap_snapshotadd add;
	struct blksnap_uuid id;

	uuid_parse(ids, &id);
	if (setgid(65534) || setuid(65534)) {
		tap(0, "drop to uid 65534: %s", strerror(errno));
		return;
	}
	expect_rc(cmd_create("/tmp", 1 << 20, NULL), EPERM, "create as nobody");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id), EPERM,
		  "take as nobody");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id), EPERM,
		  "destroy as nobody");
	expect_rc(cmd_wait(&id, 10, &ev), EPERM, "wait-event as nobody");
	expect_rc(do_ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &col), EPERM,
		  "collect as nobody");
	add.id = id;
	expect_rc(filter(IOCTL_BLKSNAP_FILTER_CTL, dev,
			 BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, &add, sizeof(add)),
		  EPERM, "snapshotadd as nobody");
}

int main(int argc, char **argv)
{
	int rc, want;

	if (argc < 2) {
		fprintf(stderr, "usage: see the header of snap_ctl.c\n");
		return 2;
	}
	if (!strcmp(argv[1], "badinput") && argc == 3) {
		badinput(argv[2]);
		return failures ? 1 : 0;
	}
	if (!strcmp(argv[1], "nobody") && argc == 4) {
		/* The control device is opened before dropping privileges. */
		open_ctl();
		nobody(argv[2], argv[3]);
		return failures ? 1 : 0;
	}
	if (!strcmp(argv[1], "faulty") && argc >= 3) {
		open_ctl();
		faulty_fd = open("/proc/self/make-it-fail", O_WRONLY);
		if (faulty_fd < 0) {
			perror("snap_ctl: /proc/self/make-it-fail");
			return 2;
		}
		argv++;
		argc--;
	}
	if (!strcmp(argv[1], "expect") && argc >= 4) {
		want = errnum(argv[2]);
		if (want < 0) {
			fprintf(stderr, "snap_ctl: unknown errno name %s\n",
				argv[2]);
			return 2;
		}
		rc = run(argc - 3, argv + 3);
		if (rc == -want)
			return 0;
		fprintf(stderr, "snap_ctl: %s: want %s, got %s\n", argv[3],
			argv[2], errname(-rc));
		return 1;
	}
	rc = run(argc - 1, argv + 1);
	if (rc) {
		fprintf(stderr, "snap_ctl: %s: %s\n", argv[1], errname(-rc));
		return 1;
	}
	return 0;
}
