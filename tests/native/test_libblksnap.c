// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap's argument checks, transport choice, request encoding and
 * errno propagation, against the fake system call layer (fake_sys.c), so no
 * kernel module and no root are needed. Prints TAP.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libblksnap.h"
#include "fake_sys.h"

static int test_number, failures;

static void ok(int cond, const char *desc)
{
	test_number++;
	printf("%sok %d - %s\n", cond ? "" : "not ", test_number, desc);
	if (!cond)
		failures++;
}

#define CHECK_RC(expr, want, desc)                                            \
	do {                                                                  \
		int32_t _rc = (expr);                                         \
		if (_rc != (want))                                            \
			printf("# %s: got %d, want %d\n", #expr, _rc, (want)); \
		ok(_rc == (want), desc);                                      \
	} while (0)

static struct blksnap_dev *open_dev(const char *path)
{
	struct blksnap_dev *dev = NULL;

	if (blksnap_dev_open(path, &dev))
		return NULL;
	return dev;
}

static void test_version_and_ctl(void)
{
	struct blksnap_ctl *ctl = (void *)1;
	struct blksnap_version v;

	ok(blksnap_lib_version() == ((1u << 16) | (0u << 8) | 0u),
	   "blksnap_lib_version() is 1.0.0");
	CHECK_RC(blksnap_ctl_open(NULL, NULL), -EINVAL,
		 "blksnap_ctl_open() without out is -EINVAL");
	CHECK_RC(blksnap_ctl_open("", &ctl), -EINVAL,
		 "blksnap_ctl_open() of an empty path is -EINVAL");
	ok(ctl == NULL, "blksnap_ctl_open() sets *out to NULL on failure");
	fake_set_module(0);
	CHECK_RC(blksnap_ctl_open(NULL, &ctl), -ENOENT,
		 "blksnap_ctl_open() without the module is -ENOENT");
	fake_set_module(1);
	CHECK_RC(blksnap_ctl_open("/dev/fakeblk0", &ctl), -ENOTTY,
		 "blksnap_ctl_open() of a block device is -ENOTTY");
	CHECK_RC(blksnap_ctl_open(NULL, &ctl), 0,
		 "blksnap_ctl_open() opens the default control device");
	CHECK_RC(blksnap_ctl_version(ctl, NULL), -EINVAL,
		 "blksnap_ctl_version() without out is -EINVAL");
	CHECK_RC(blksnap_ctl_version(NULL, &v), -EINVAL,
		 "blksnap_ctl_version() without a handle is -EINVAL");
	memset(&v, 0xff, sizeof(v));
	CHECK_RC(blksnap_ctl_version(ctl, &v), 0,
		 "blksnap_ctl_version() succeeds");
	ok(v.major == 2 && v.minor == 0 && v.revision == 0 && v.build == 0,
	   "blksnap_ctl_version() copies 2.0.0.0 out");
	{
		unsigned long req = 0;

		fake_last(&req, NULL, NULL);
		ok(req == IOCTL_BLKSNAP_VERSION,
		   "blksnap_ctl_version() issues IOCTL_BLKSNAP_VERSION");
	}
	fake_fail(IOCTL_BLKSNAP_VERSION, EIO, 1);
	CHECK_RC(blksnap_ctl_version(ctl, &v), -EIO,
		 "blksnap_ctl_version() propagates the kernel's -EIO");
	blksnap_ctl_close(ctl);
	blksnap_ctl_close(NULL);
	ok(fake_open_fds() == 0, "blksnap_ctl_close() releases the fd");
}

static void test_dev_open(void)
{
	struct blksnap_dev *dev = (void *)1;
	uint32_t mj = 0, mn = 0;

	CHECK_RC(blksnap_dev_open(NULL, &dev), -EINVAL,
		 "blksnap_dev_open(NULL) is -EINVAL");
	ok(dev == NULL, "blksnap_dev_open() sets *out to NULL on failure");
	CHECK_RC(blksnap_dev_open("/dev/fakeblk0", NULL), -EINVAL,
		 "blksnap_dev_open() without out is -EINVAL");
	CHECK_RC(blksnap_dev_open("", &dev), -EINVAL,
		 "blksnap_dev_open(\"\") is -EINVAL");
	CHECK_RC(blksnap_dev_open("/fake/file", &dev), -ENOTBLK,
		 "blksnap_dev_open() of a regular file is -ENOTBLK");
	CHECK_RC(blksnap_dev_open("/fake/chr", &dev), -ENOTBLK,
		 "blksnap_dev_open() of a character device is -ENOTBLK");
	CHECK_RC(blksnap_dev_open("/nonexistent/blksnap-test", &dev), -ENOENT,
		 "blksnap_dev_open() of a missing path is -ENOENT");
	ok(fake_open_fds() == 0, "failed opens leave no fd open");

	fake_set_module(0);
	CHECK_RC(blksnap_dev_open("/dev/fakeblk2", &dev), 0,
		 "blksnap_dev_open() succeeds without the module");
	CHECK_RC(blksnap_dev_attach(dev), -ENOENT,
		 "attach without the module is -ENOENT (control transport)");
	CHECK_RC(blksnap_dev_number(dev, &mj, &mn), 0,
		 "blksnap_dev_number() succeeds");
	ok(mj == FAKE_MAJOR && mn == 2, "blksnap_dev_number() is 254:2");
	CHECK_RC(blksnap_dev_number(dev, NULL, &mn), -EINVAL,
		 "blksnap_dev_number() without major is -EINVAL");
	blksnap_dev_close(dev);
	fake_set_module(1);
	blksnap_dev_close(NULL);
	ok(fake_open_fds() == 0, "blksnap_dev_close() releases every fd");
}

static void test_transport(void)
{
	struct blksnap_dev *dev;
	unsigned long req = 0;
	uint8_t arg[64];
	int kind;

	fake_set_blkfilter(0, ENOTTY);
	dev = open_dev("/dev/fakeblk0");
	ok(dev && blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_CONTROL,
	   "a probe answered -ENOTTY selects the control transport");
	blksnap_dev_close(dev);
	fake_set_blkfilter(0, EINVAL);
	dev = open_dev("/dev/fakeblk0");
	ok(dev && blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_CONTROL,
	   "a probe answered -EINVAL selects the control transport");
	CHECK_RC(blksnap_dev_attach(dev), 0, "attach over the control device");
	kind = fake_last(&req, arg, NULL);
	{
		struct blksnap_filter_request *r = (void *)arg;

		ok(kind == 2 && req == IOCTL_BLKSNAP_FILTER_ATTACH,
		   "control attach issues IOCTL_BLKSNAP_FILTER_ATTACH on the control device");
		ok(r->dev_major == FAKE_MAJOR && r->dev_minor == 0 &&
			   !strcmp((char *)r->name, "blksnap") && r->opt == 0 &&
			   r->optlen == 0 && r->cmd == 0,
		   "control attach names 254:0 and the filter \"blksnap\"");
	}
	CHECK_RC(blksnap_dev_attach(dev), -EALREADY,
		 "a second attach is -EALREADY");
	CHECK_RC(blksnap_dev_detach(dev), 0, "detach over the control device");
	fake_last(&req, NULL, NULL);
	ok(req == IOCTL_BLKSNAP_FILTER_DETACH,
	   "control detach issues IOCTL_BLKSNAP_FILTER_DETACH");
	CHECK_RC(blksnap_dev_detach(dev), -ENOENT,
		 "detach of an unattached device is -ENOENT");
	blksnap_dev_close(dev);

	fake_set_blkfilter(1, 0);
	kind = fake_ioctl_count(BLKFILTER_DETACH);
	dev = open_dev("/dev/fakeblk1");
	ok(dev && blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_BLKFILTER,
	   "a probe answered -EFAULT selects the blkfilter transport");
	ok(fake_ioctl_count(BLKFILTER_DETACH) == kind + 1,
	   "the probe is one BLKFILTER_DETACH");
	CHECK_RC(blksnap_dev_attach(dev), 0, "attach over blkfilter");
	kind = fake_last(&req, arg, NULL);
	{
		struct blkfilter_attach *a = (void *)arg;

		ok(kind == 1 && req == BLKFILTER_ATTACH &&
			   !strcmp((char *)a->name, "blksnap"),
		   "blkfilter attach issues BLKFILTER_ATTACH \"blksnap\" on the device fd");
	}
	{
		struct blksnap_cbtinfo info;
		struct blkfilter_ctl *c = (void *)arg;

		CHECK_RC(blksnap_dev_cbtinfo(dev, &info), 0,
			 "cbtinfo over blkfilter");
		fake_last(&req, arg, NULL);
		ok(req == BLKFILTER_CTL && c->cmd == BLKFILTER_CTL_BLKSNAP_CBTINFO &&
			   c->optlen == sizeof(info) &&
			   !strcmp((char *)c->name, "blksnap"),
		   "blkfilter cbtinfo issues BLKFILTER_CTL cmd 0 optlen 40");
	}
	ok(blksnap_dev_transport(NULL) == -EINVAL,
	   "blksnap_dev_transport(NULL) is -EINVAL");
	fake_set_module(0);
	CHECK_RC(blksnap_dev_detach(dev), -ENOENT,
		 "blkfilter detach without the module is -ENOENT");
	fake_set_module(1);
	CHECK_RC(blksnap_dev_detach(dev), 0, "detach over blkfilter");
	blksnap_dev_close(dev);

	/* The probe as an unprivileged caller: the module answers -EPERM. */
	fake_set_blkfilter(1, 0);
	fake_fail(BLKFILTER_DETACH, EPERM, 1);
	dev = open_dev("/dev/fakeblk1");
	ok(dev && blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_BLKFILTER,
	   "a probe answered -EPERM selects the blkfilter transport");
	blksnap_dev_close(dev);

	/* Our module's hook on a stock kernel: gone when the module is. */
	fake_set_blkfilter(2, EINVAL);
	dev = open_dev("/dev/fakeblk2");
	ok(dev && blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_BLKFILTER,
	   "the module's hook selects the blkfilter transport");
	CHECK_RC(blksnap_dev_attach(dev), 0, "attach through the module's hook");
	{
		struct blksnap_cbtinfo info;

		fake_fail(0x100 + BLKFILTER_CTL_BLKSNAP_CBTINFO, EINVAL, 1);
		CHECK_RC(blksnap_dev_cbtinfo(dev, &info), -EINVAL,
			 "an -EINVAL of the module itself is returned");
		ok(blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_BLKFILTER,
		   "and the handle stays on the device fd");
		kind = fake_ioctl_count(0);
		fake_set_module(0);
		CHECK_RC(blksnap_dev_cbtinfo(dev, &info), -ENOENT,
			 "after an unload the loop driver's -EINVAL becomes -ENOENT");
		ok(blksnap_dev_transport(dev) == BLKSNAP_TRANSPORT_CONTROL,
		   "and the handle moved to the control device");
		ok(fake_ioctl_count(0) == kind + 2,
		   "after one request on the fd and one probe (the control device is absent)");
		/* Reloaded with blkfilter_ioctls=0: the control device works. */
		fake_set_blkfilter(0, EINVAL);
		fake_set_module(1);
		CHECK_RC(blksnap_dev_cbtinfo(dev, &info), 0,
			 "after a reload the handle works through the control device");
		fake_last(&req, NULL, NULL);
		ok(req == IOCTL_BLKSNAP_FILTER_CTL,
		   "with IOCTL_BLKSNAP_FILTER_CTL");
	}
	CHECK_RC(blksnap_dev_detach(dev), 0, "detach");
	blksnap_dev_close(dev);
	fake_set_blkfilter(0, ENOTTY);
}

static void test_cbt(void)
{
	struct blksnap_dev *dev = open_dev("/dev/fakeblk3");
	struct blksnap_cbtinfo info;
	uint8_t *buf;
	uint32_t cmd = 0, optlen = 0, count;
	int good = 1;

	fake_set_geometry(3, (5ull << 20) * 4096 / 2 + 1000, 4096);
	CHECK_RC(blksnap_dev_cbtinfo(dev, &info), -ENOENT,
		 "cbtinfo of an unattached device is -ENOENT");
	CHECK_RC(blksnap_dev_attach(dev), 0, "attach");
	CHECK_RC(blksnap_dev_cbtinfo(dev, NULL), -EINVAL,
		 "cbtinfo without out is -EINVAL");
	CHECK_RC(blksnap_dev_cbtinfo(NULL, &info), -EINVAL,
		 "cbtinfo without a handle is -EINVAL");
	CHECK_RC(blksnap_dev_cbtinfo(dev, &info), 0, "cbtinfo");
	fake_last_ctl(&cmd, &optlen, NULL);
	ok(cmd == BLKFILTER_CTL_BLKSNAP_CBTINFO && optlen == 40,
	   "control cbtinfo carries cmd 0 and optlen 40");
	count = info.block_count;
	ok(info.block_size == 4096 && count == 2621441 &&
		   info.device_capacity == (5ull << 20) * 4096 / 2 + 1000 &&
		   info.generation_id.b[0] == 0xa3,
	   "cbtinfo copies capacity, block size, count and generation");

	buf = calloc(count, 1);
	CHECK_RC(blksnap_dev_cbtmap(dev, 0, 0, buf), -EINVAL,
		 "cbtmap of length 0 is -EINVAL");
	CHECK_RC(blksnap_dev_cbtmap(dev, 0, 16, NULL), -EINVAL,
		 "cbtmap without a buffer is -EINVAL");
	CHECK_RC(blksnap_dev_cbtmap(dev, 0xffffffffu, 2, buf), -EINVAL,
		 "cbtmap with offset + length past 2^32 is -EINVAL");
	CHECK_RC(blksnap_dev_cbtmap(dev, count - 1, 2, buf), -ENODATA,
		 "cbtmap past the end of the map is -ENODATA");
	fake_set_map(3, 0, 1, 1);
	fake_set_map(3, 1048575, 2, 2);
	fake_set_map(3, count - 1, 7, 1);
	{
		int before = fake_ioctl_count(IOCTL_BLKSNAP_FILTER_CTL);

		CHECK_RC(blksnap_dev_cbtmap(dev, 0, count, buf), 0,
			 "cbtmap of the whole 2.5 Mi-block map");
		ok(fake_ioctl_count(IOCTL_BLKSNAP_FILTER_CTL) - before == 3,
		   "a 2.5 MiB read is split into 3 requests of at most 1 MiB");
	}
	for (uint32_t i = 0; i < count; i++) {
		uint8_t want = i == 0 ? 1 : (i == 1048575 || i == 1048576) ? 2 :
					     i == count - 1 ? 7 : 0;
		if (buf[i] != want)
			good = 0;
	}
	ok(good, "cbtmap pieces land at the right offsets");
	memset(buf, 0, 8);
	CHECK_RC(blksnap_dev_cbtmap(dev, 1048574, 4, buf), 0,
		 "cbtmap of an inner range");
	ok(buf[0] == 0 && buf[1] == 2 && buf[2] == 2 && buf[3] == 0,
	   "cbtmap of an inner range reads from offset");
	fake_fail(0x100 + BLKFILTER_CTL_BLKSNAP_CBTMAP, EFAULT, 1);
	CHECK_RC(blksnap_dev_cbtmap(dev, 0, 16, buf), -EFAULT,
		 "cbtmap propagates -EFAULT (corrupted map)");
	free(buf);

	{
		struct blksnap_sectors *r;
		uint32_t n = BLKSNAP_CBTDIRTY_MAX_RANGES + 1;
		int before;

		CHECK_RC(blksnap_dev_cbtdirty(dev, NULL, 1), -EINVAL,
			 "cbtdirty of NULL ranges is -EINVAL");
		before = fake_ioctl_count(0);
		CHECK_RC(blksnap_dev_cbtdirty(dev, NULL, 0), 0,
			 "cbtdirty of no ranges succeeds");
		ok(fake_ioctl_count(0) == before,
		   "cbtdirty of no ranges makes no request");
		r = calloc(n, sizeof(*r));
		for (uint32_t i = 0; i < n; i++) {
			r[i].offset = (uint64_t)i * 8;
			r[i].count = 1;
		}
		before = fake_ioctl_count(IOCTL_BLKSNAP_FILTER_CTL);
		CHECK_RC(blksnap_dev_cbtdirty(dev, r, n), 0,
			 "cbtdirty of 65537 ranges");
		ok(fake_ioctl_count(IOCTL_BLKSNAP_FILTER_CTL) - before == 2,
		   "65537 ranges go in 2 requests");
		{
			uint8_t opt[64];
			struct blksnap_cbtdirty *d = (void *)opt;

			fake_last_ctl(&cmd, &optlen, opt);
			ok(cmd == BLKFILTER_CTL_BLKSNAP_CBTDIRTY && optlen == 16 &&
				   d->count == 1 &&
				   d->dirty_sectors == (uint64_t)(uintptr_t)(r + n - 1),
			   "the second request carries the last range");
		}
		r[0].offset = info.device_capacity / 512;
		r[0].count = 8;
		CHECK_RC(blksnap_dev_cbtdirty(dev, r, 1), -EINVAL,
			 "cbtdirty propagates -EINVAL for a range past the device");
		fake_fail(0x100 + BLKFILTER_CTL_BLKSNAP_CBTDIRTY, EPERM, 1);
		CHECK_RC(blksnap_dev_cbtdirty(dev, r + 1, 1), -EPERM,
			 "cbtdirty propagates -EPERM");
		free(r);
	}
	CHECK_RC(blksnap_dev_detach(dev), 0, "detach");
	blksnap_dev_close(dev);
}

static void test_errno_propagation(void)
{
	static const int errs[] = { EBUSY, ENOMEM, ENODEV, EPERM, EACCES };
	struct blksnap_dev *dev = open_dev("/dev/fakeblk0");
	int good = 1;

	for (unsigned i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		fake_fail(IOCTL_BLKSNAP_FILTER_ATTACH, errs[i], 1);
		if (blksnap_dev_attach(dev) != -errs[i])
			good = 0;
	}
	ok(good, "attach returns the kernel's errno unchanged (5 errnos)");
	fake_fail(IOCTL_BLKSNAP_FILTER_DETACH, EBUSY, 1);
	CHECK_RC(blksnap_dev_detach(dev), -EBUSY, "detach propagates -EBUSY");
	fake_set_blkfilter(1, 0);
	blksnap_dev_close(dev);
	dev = open_dev("/dev/fakeblk0");
	fake_fail(BLKFILTER_ATTACH, EBUSY, 1);
	CHECK_RC(blksnap_dev_attach(dev), -EBUSY,
		 "blkfilter attach propagates -EBUSY (another filter)");
	blksnap_dev_close(dev);
	fake_set_blkfilter(0, ENOTTY);
}

static void test_snapshots(void)
{
	struct blksnap_ctl *ctl = NULL;
	struct blksnap_dev *dev;
	struct blksnap_uuid id, ids[4];
	struct blksnap_snapshotinfo info;
	struct blksnap_snapshot_event *ev = malloc(sizeof(*ev));
	uint32_t count = 99;
	unsigned long req;
	uint8_t arg[64];

	blksnap_ctl_open(NULL, &ctl);
	CHECK_RC(blksnap_snapshot_create(ctl, "/tmp", 1024, &id),
		 -EOPNOTSUPP,
		 "create propagates -EOPNOTSUPP from a module without snapshots");
	fake_set_snapshots(1);
	CHECK_RC(blksnap_snapshot_create(ctl, NULL, 1024, &id), -EINVAL,
		 "create without a path is -EINVAL");
	CHECK_RC(blksnap_snapshot_create(ctl, "", 1024, &id), -EINVAL,
		 "create with an empty path is -EINVAL");
	CHECK_RC(blksnap_snapshot_create(ctl, "/tmp", 0, &id), -EINVAL,
		 "create with a zero limit is -EINVAL");
	CHECK_RC(blksnap_snapshot_create(ctl, "/tmp", 1024, NULL), -EINVAL,
		 "create without id out is -EINVAL");
	CHECK_RC(blksnap_snapshot_create(ctl, "/tmp", 1024, &id), 0,
		 "create");
	fake_last(&req, arg, NULL);
	{
		struct blksnap_snapshot_create *c = (void *)arg;

		ok(req == IOCTL_BLKSNAP_SNAPSHOT_CREATE &&
			   c->diff_storage_limit_sect == 1024 &&
			   !strcmp((const char *)(uintptr_t)c->diff_storage_filename,
				   "/tmp"),
		   "create passes the limit in sectors and the path pointer");
		ok(id.b[0] == 16 && id.b[15] == 31,
		   "create copies the new id out");
	}
	CHECK_RC(blksnap_snapshot_collect(ctl, NULL, 0, NULL), -EINVAL,
		 "collect without count is -EINVAL");
	CHECK_RC(blksnap_snapshot_collect(ctl, NULL, 3, &count), -EINVAL,
		 "collect of NULL ids with capacity is -EINVAL");
	CHECK_RC(blksnap_snapshot_collect(ctl, NULL, 0, &count), 0,
		 "collect count only");
	ok(count == 1, "collect counts 1 snapshot");
	blksnap_snapshot_create(ctl, "/var/tmp", 1024, &ids[3]);
	count = 0;
	CHECK_RC(blksnap_snapshot_collect(ctl, ids, 1, &count), -ENODATA,
		 "collect into too small an array is -ENODATA");
	ok(count == 1 && !memcmp(&ids[0], &id, 16),
	   "collect -ENODATA reports the entries copied");
	CHECK_RC(blksnap_snapshot_collect(ctl, ids, 3, &count), 0,
		 "collect into a large enough array");
	ok(count == 2, "collect copies 2 ids");
	CHECK_RC(blksnap_snapshot_destroy(ctl, &ids[3]), 0, "destroy");
	CHECK_RC(blksnap_snapshot_destroy(ctl, &ids[3]), -ENODEV,
		 "destroy of an unknown id propagates -ENODEV");
	CHECK_RC(blksnap_snapshot_destroy(ctl, NULL), -EINVAL,
		 "destroy without id is -EINVAL");
	CHECK_RC(blksnap_snapshot_take(ctl, &id), -ENODEV,
		 "take of an empty snapshot propagates -ENODEV");

	dev = open_dev("/dev/fakeblk1");
	CHECK_RC(blksnap_dev_snapshot_add(dev, &id), -ENOENT,
		 "snapshot_add of an unattached device is -ENOENT");
	blksnap_dev_attach(dev);
	CHECK_RC(blksnap_dev_snapshot_add(dev, NULL), -EINVAL,
		 "snapshot_add without id is -EINVAL");
	CHECK_RC(blksnap_dev_snapshot_info(dev, &info), 0,
		 "snapshot_info outside a snapshot is 0, as the module");
	ok(info.error_code == 0 && !info.image[0],
	   "outside a snapshot: no error, no image");
	CHECK_RC(blksnap_dev_snapshot_add(dev, &id), 0, "snapshot_add");
	CHECK_RC(blksnap_dev_snapshot_add(dev, &id), -EALREADY,
		 "a second snapshot_add is -EALREADY");
	CHECK_RC(blksnap_dev_snapshot_info(dev, &info), 0, "snapshot_info");
	ok(info.error_code == 0 && info.image[0] == 0,
	   "snapshot_info before take has an empty image");
	CHECK_RC(blksnap_snapshot_take(ctl, &id), 0, "take");
	CHECK_RC(blksnap_snapshot_take(ctl, &id), -EALREADY,
		 "a second take is -EALREADY");
	blksnap_dev_snapshot_info(dev, &info);
	ok(!strcmp((char *)info.image, "blksnap-254-1"),
	   "snapshot_info after take names the image");

	CHECK_RC(blksnap_snapshot_wait_event(ctl, &id, 5, NULL), -EINVAL,
		 "wait_event without event is -EINVAL");
	CHECK_RC(blksnap_snapshot_wait_event(ctl, &id, 5, ev), -ENOENT,
		 "wait_event with no event is -ENOENT (timeout)");
	{
		struct blksnap_snapshot_event *e = (void *)arg;

		fake_last(&req, arg, NULL);
		ok(req == IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT && e->timeout_ms == 5 &&
			   !memcmp(&e->id, &id, 16),
		   "wait_event passes the id and the timeout in ms");
	}
	{
		struct blksnap_event_corrupted c = { 254, 1, -ENOSPC };

		fake_queue_event(0, 123456789, &c, sizeof(c));
		CHECK_RC(blksnap_snapshot_wait_event(ctl, &id, 5, ev), 0,
			 "wait_event returns a queued event");
		ok(ev->code == 0 && ev->time_label == 123456789 &&
			   ((struct blksnap_event_corrupted *)ev->data)->err_code ==
				   -ENOSPC,
		   "wait_event copies code, time and payload");
	}
	CHECK_RC(blksnap_snapshot_destroy(ctl, &id), 0, "destroy the taken one");
	CHECK_RC(blksnap_snapshot_wait_event(ctl, &id, 5, ev), -ESRCH,
		 "wait_event on a destroyed snapshot is -ESRCH");
	CHECK_RC(blksnap_dev_detach(dev), 0, "detach after destroy");
	blksnap_dev_close(dev);
	blksnap_ctl_close(ctl);
	free(ev);
	fake_set_snapshots(0);
}

struct race {
	struct blksnap_dev *dev;
	int rc;
};

static void *race_cbtinfo(void *p)
{
	struct race *r = p;
	struct blksnap_cbtinfo info;

	r->rc = blksnap_dev_cbtinfo(r->dev, &info);
	return NULL;
}

static void test_threads(void)
{
	struct blksnap_dev *dev = open_dev("/dev/fakeblk2");
	struct blksnap_dev *other = open_dev("/dev/fakeblk2");
	pthread_t th[8];
	struct race r[8];
	int good = 1, before;

	blksnap_dev_attach(other);
	before = fake_open_fds();
	for (int i = 0; i < 8; i++) {
		r[i].dev = dev;
		pthread_create(&th[i], NULL, race_cbtinfo, &r[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		if (r[i].rc)
			good = 0;
	}
	ok(good, "8 threads share one handle's first request");
	ok(fake_open_fds() == before + 1,
	   "racing first requests open the control device once");
	blksnap_dev_detach(other);
	blksnap_dev_close(other);
	blksnap_dev_close(dev);
	ok(fake_open_fds() == 0, "no fd is left open at the end");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
	fake_reset();
	test_version_and_ctl();
	test_dev_open();
	test_transport();
	test_cbt();
	test_errno_propagation();
	test_snapshots();
	test_threads();
	printf("1..%d\n", test_number);
	return failures ? 1 : 0;
}
