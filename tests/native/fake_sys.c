// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The fake system call layer for libblksnap's tests (see fake_sys.h). It
 * implements kmod/ctl/sys.h, so the library under test is the real
 * libblksnap.c linked against this file instead of sys_linux.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <blksnap.h>

#include "../../kmod/ctl/sys.h"
#include "fake_sys.h"

#define FD_BASE 1000
#define FD_SLOTS 256
#define KIND_DEV 1
#define KIND_CTL 2
#define MAX_SNAPSHOTS 16
#define COPY_MAX 64
#define SUBCMD(cmd) (0x100ul + (cmd))

struct fake_tracker {
	int attached;
	uint64_t capacity;
	uint32_t block_size;
	uint32_t block_count;
	/* As the module's cbt_map: read_map is what CBTMAP copies (frozen at
	 * the last take), write_map what writes and CBTDIRTY mark; a take
	 * copies write_map to read_map and increments changes_number. */
	uint8_t *map;
	uint8_t *write_map;
	uint8_t changes_number;
	struct blksnap_uuid generation;
	int snapshot; /* index + 1, or 0 */
};

struct fake_snapshot {
	int used;
	int taken;
	struct blksnap_uuid id;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int kind;
	int index;
} fds[FD_SLOTS];
static int open_fds;

static int blkfilter;
static int probe_errno = ENOTTY;
static int module_loaded = 1;
static int snapshots_on;
static unsigned long fail_request;
static int fail_err, fail_times;
static int ioctls;
static unsigned long ioctl_log[4096];
static struct fake_tracker trackers[FAKE_DEVICES];
static uint64_t geometry_capacity[FAKE_DEVICES];
static uint32_t geometry_block[FAKE_DEVICES];
static struct fake_snapshot snapshots[MAX_SNAPSHOTS];
static uint32_t snapshot_serial;
static uint32_t attach_serial;
static struct {
	int queued;
	uint32_t code;
	int64_t time_label;
	uint8_t data[sizeof(((struct blksnap_snapshot_event *)0)->data)];
} event;
static struct {
	int kind;
	unsigned long request;
	uint8_t arg[COPY_MAX];
	uint32_t len;
	uint32_t cmd, optlen;
	uint8_t opt[COPY_MAX];
	int has_ctl;
} last;

static void reset_trackers(void)
{
	for (int i = 0; i < FAKE_DEVICES; i++) {
		free(trackers[i].map);
		free(trackers[i].write_map);
		memset(&trackers[i], 0, sizeof(trackers[i]));
	}
}

void fake_reset(void)
{
	pthread_mutex_lock(&lock);
	blkfilter = 0;
	probe_errno = ENOTTY;
	module_loaded = 1;
	snapshots_on = 0;
	fail_request = 0;
	fail_times = 0;
	ioctls = 0;
	reset_trackers();
	for (int i = 0; i < FAKE_DEVICES; i++) {
		geometry_capacity[i] = 64ull << 20;
		geometry_block[i] = 65536;
	}
	memset(snapshots, 0, sizeof(snapshots));
	memset(&event, 0, sizeof(event));
	memset(&last, 0, sizeof(last));
	pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) static void fake_init(void)
{
	fake_reset();
}

void fake_set_blkfilter(int on, int err)
{
	pthread_mutex_lock(&lock);
	blkfilter = on;
	probe_errno = err;
	pthread_mutex_unlock(&lock);
}

void fake_set_module(int loaded)
{
	pthread_mutex_lock(&lock);
	module_loaded = loaded;
	pthread_mutex_unlock(&lock);
}

void fake_set_snapshots(int on)
{
	pthread_mutex_lock(&lock);
	snapshots_on = on;
	pthread_mutex_unlock(&lock);
}

void fake_fail(unsigned long request, int err, int times)
{
	pthread_mutex_lock(&lock);
	fail_request = request;
	fail_err = err;
	fail_times = times;
	pthread_mutex_unlock(&lock);
}

void fake_set_geometry(int index, uint64_t capacity, uint32_t block_size)
{
	if (index < 0 || index >= FAKE_DEVICES)
		return;
	pthread_mutex_lock(&lock);
	geometry_capacity[index] = capacity;
	geometry_block[index] = block_size;
	pthread_mutex_unlock(&lock);
}

int fake_set_map(int index, uint32_t offset, uint8_t value, uint32_t count)
{
	int ret = -EINVAL;

	pthread_mutex_lock(&lock);
	if (index >= 0 && index < FAKE_DEVICES && trackers[index].attached &&
	    (uint64_t)offset + count <= trackers[index].block_count) {
		memset(trackers[index].map + offset, value, count);
		ret = 0;
	}
	pthread_mutex_unlock(&lock);
	return ret;
}

void fake_queue_event(uint32_t code, int64_t time_label, const void *data,
		      uint32_t len)
{
	pthread_mutex_lock(&lock);
	event.queued = 1;
	event.code = code;
	event.time_label = time_label;
	memset(event.data, 0, sizeof(event.data));
	if (len > sizeof(event.data))
		len = sizeof(event.data);
	if (data)
		memcpy(event.data, data, len);
	pthread_mutex_unlock(&lock);
}

int fake_open_fds(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = open_fds;
	pthread_mutex_unlock(&lock);
	return n;
}

int fake_ioctl_count(unsigned long request)
{
	int n = 0;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < ioctls && i < 4096; i++)
		if (!request || ioctl_log[i] == request)
			n++;
	pthread_mutex_unlock(&lock);
	return n;
}

int fake_last(unsigned long *request, void *arg, uint32_t *len)
{
	int kind;

	pthread_mutex_lock(&lock);
	kind = last.kind;
	if (request)
		*request = last.request;
	if (arg)
		memcpy(arg, last.arg, COPY_MAX);
	if (len)
		*len = last.len;
	pthread_mutex_unlock(&lock);
	return kind;
}

int fake_last_ctl(uint32_t *cmd, uint32_t *optlen, void *opt)
{
	int has;

	pthread_mutex_lock(&lock);
	has = last.has_ctl;
	if (cmd)
		*cmd = last.cmd;
	if (optlen)
		*optlen = last.optlen;
	if (opt)
		memcpy(opt, last.opt, COPY_MAX);
	pthread_mutex_unlock(&lock);
	return has;
}

/* ---------------------------------------------------------------------- */
/* Paths and fds                                                          */
/* ---------------------------------------------------------------------- */

/* KIND_DEV with *index, KIND_CTL, 3 regular file, 4 other char, or 0. */
static int fake_path(const char *path, int *index)
{
	if (!strncmp(path, "/dev/fakeblk", 12) && path[12] >= '0' &&
	    path[12] < '0' + FAKE_DEVICES && !path[13]) {
		*index = path[12] - '0';
		return KIND_DEV;
	}
	if (!strcmp(path, "/dev/" BLKSNAP_CTL))
		return KIND_CTL;
	if (!strcmp(path, "/fake/file"))
		return 3;
	if (!strcmp(path, "/fake/chr"))
		return 4;
	return 0;
}

static void fake_fill_stat(int kind, int index, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	switch (kind) {
	case KIND_DEV:
		st->st_mode = S_IFBLK | 0660;
		st->st_rdev = makedev(FAKE_MAJOR, index);
		break;
	case KIND_CTL:
		st->st_mode = S_IFCHR | 0600;
		st->st_rdev = makedev(10, 100);
		break;
	case 3:
		st->st_mode = S_IFREG | 0644;
		st->st_size = 4096;
		break;
	default:
		st->st_mode = S_IFCHR | 0666;
		st->st_rdev = makedev(1, 3);
		break;
	}
}

int blksnap__sys_open(const char *path, int flags)
{
	int index = 0, kind = fake_path(path, &index), fd;

	if (!kind) {
		fd = open(path, flags | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	pthread_mutex_lock(&lock);
	if (kind == KIND_CTL && !module_loaded) {
		pthread_mutex_unlock(&lock);
		return -ENOENT;
	}
	for (int i = 0; i < FD_SLOTS; i++) {
		if (!fds[i].kind) {
			fds[i].kind = kind;
			fds[i].index = index;
			open_fds++;
			pthread_mutex_unlock(&lock);
			return FD_BASE + i;
		}
	}
	pthread_mutex_unlock(&lock);
	return -EMFILE;
}

void blksnap__sys_close(int fd)
{
	if (fd < FD_BASE || fd >= FD_BASE + FD_SLOTS) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&lock);
	if (fds[fd - FD_BASE].kind) {
		fds[fd - FD_BASE].kind = 0;
		open_fds--;
	}
	pthread_mutex_unlock(&lock);
}

int blksnap__sys_stat(const char *path, struct stat *st)
{
	int index = 0, kind = fake_path(path, &index);

	if (!kind)
		return stat(path, st) < 0 ? -errno : 0;
	if (kind == KIND_CTL && !module_loaded)
		return -ENOENT;
	fake_fill_stat(kind, index, st);
	return 0;
}

int blksnap__sys_fstat(int fd, struct stat *st)
{
	int kind, index;

	if (fd < FD_BASE || fd >= FD_BASE + FD_SLOTS)
		return fstat(fd, st) < 0 ? -errno : 0;
	pthread_mutex_lock(&lock);
	kind = fds[fd - FD_BASE].kind;
	index = fds[fd - FD_BASE].index;
	pthread_mutex_unlock(&lock);
	if (!kind)
		return -EBADF;
	fake_fill_stat(kind, index, st);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The emulated module (called with the lock held)                        */
/* ---------------------------------------------------------------------- */

static int armed(unsigned long request)
{
	if (fail_times > 0 && fail_request == request) {
		fail_times--;
		return -fail_err;
	}
	return 0;
}

static int tracker_attach(int index)
{
	struct fake_tracker *t = &trackers[index];

	if (!module_loaded)
		return -ENOENT;
	if (t->attached)
		return -EALREADY;
	t->capacity = geometry_capacity[index];
	t->block_size = geometry_block[index];
	t->block_count = (uint32_t)((t->capacity + t->block_size - 1) /
				    t->block_size);
	t->map = calloc(t->block_count ? t->block_count : 1, 1);
	t->write_map = calloc(t->block_count ? t->block_count : 1, 1);
	if (!t->map || !t->write_map) {
		free(t->map);
		free(t->write_map);
		t->map = t->write_map = NULL;
		return -ENOMEM;
	}
	t->changes_number = 0;
	/* Every attach starts a new generation, as in the module. */
	attach_serial++;
	for (int i = 0; i < 16; i++)
		t->generation.b[i] = (uint8_t)(0xa0 + i + index);
	memcpy(&t->generation.b[12], &attach_serial, sizeof(attach_serial));
	t->attached = 1;
	return 0;
}

static int tracker_detach(int index)
{
	struct fake_tracker *t = &trackers[index];

	if (!module_loaded || !t->attached)
		return -ENOENT;
	/* The module's snapshot forgets the device (snapshot_forget_tracker). */
	free(t->map);
	free(t->write_map);
	memset(t, 0, sizeof(*t));
	return 0;
}

static int find_snapshot(const struct blksnap_uuid *id)
{
	for (int i = 0; i < MAX_SNAPSHOTS; i++)
		if (snapshots[i].used && !memcmp(&snapshots[i].id, id, 16))
			return i;
	return -1;
}

static int tracker_ctl(int index, uint32_t cmd, void *opt, uint32_t optlen)
{
	struct fake_tracker *t = &trackers[index];
	int ret;

	last.has_ctl = 1;
	last.cmd = cmd;
	last.optlen = optlen;
	memset(last.opt, 0, COPY_MAX);
	if (opt)
		memcpy(last.opt, opt, optlen < COPY_MAX ? optlen : COPY_MAX);
	ret = armed(SUBCMD(cmd));
	if (ret)
		return ret;
	if (!module_loaded || !t->attached)
		return -ENOENT;
	switch (cmd) {
	case BLKFILTER_CTL_BLKSNAP_CBTINFO: {
		struct blksnap_cbtinfo *info = opt;

		if (optlen < sizeof(*info))
			return -EINVAL;
		memset(info, 0, sizeof(*info));
		info->device_capacity = t->capacity;
		info->block_size = t->block_size;
		info->block_count = t->block_count;
		info->generation_id = t->generation;
		info->changes_number = t->changes_number;
		return 0;
	}
	case BLKFILTER_CTL_BLKSNAP_CBTMAP: {
		struct blksnap_cbtmap *m = opt;

		if (optlen < sizeof(*m))
			return -EINVAL;
		if (m->offset > t->block_count ||
		    m->length > t->block_count - m->offset)
			return -ENODATA;
		memcpy((void *)(uintptr_t)m->buffer, t->map + m->offset,
		       m->length);
		return 0;
	}
	case BLKFILTER_CTL_BLKSNAP_CBTDIRTY: {
		struct blksnap_cbtdirty *d = opt;
		const struct blksnap_sectors *r;

		if (optlen < sizeof(*d) || d->count > BLKSNAP_CBTDIRTY_MAX_RANGES)
			return -EINVAL;
		r = (const void *)(uintptr_t)d->dirty_sectors;
		for (uint32_t i = 0; i < d->count; i++) {
			uint64_t first = r[i].offset * 512, end;

			if (!r[i].count)
				continue;
			end = first + r[i].count * 512;
			if (end > t->capacity || end < first)
				return -EINVAL;
			/* Both maps, as cbt_map_set_both(): the read map
			 * with the last take's number, the write map with
			 * the next one's. */
			for (uint64_t b = first / t->block_size;
			     b * t->block_size < end; b++) {
				if (t->map[b] < t->changes_number)
					t->map[b] = t->changes_number;
				t->write_map[b] = t->changes_number + 1;
			}
		}
		return 0;
	}
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD: {
		struct blksnap_snapshotadd *a = opt;
		int s;

		if (!snapshots_on)
			return -EOPNOTSUPP;
		s = find_snapshot(&a->id);
		if (s < 0)
			return -ESRCH;
		if (t->snapshot == s + 1)
			return -EALREADY;
		if (t->snapshot)
			return -EBUSY;
		t->snapshot = s + 1;
		return 0;
	}
	case BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO: {
		struct blksnap_snapshotinfo *info = opt;

		if (!snapshots_on)
			return -EOPNOTSUPP;
		if (optlen < sizeof(*info))
			return -EINVAL;
		/* Outside a snapshot: no error and no image, as the module. */
		memset(info, 0, sizeof(*info));
		if (t->snapshot && snapshots[t->snapshot - 1].taken)
			snprintf((char *)info->image, sizeof(info->image),
				 "blksnap-%u-%d", FAKE_MAJOR, index);
		return 0;
	}
	default:
		return -ENOTTY;
	}
}

static int ctl_request(unsigned long request, void *arg)
{
	struct stat st;
	int s;

	switch (request) {
	case IOCTL_BLKSNAP_VERSION: {
		struct blksnap_version *v = arg;

		v->major = 2;
		v->minor = v->revision = v->build = 0;
		return 0;
	}
	case IOCTL_BLKSNAP_FILTER_ATTACH:
	case IOCTL_BLKSNAP_FILTER_DETACH:
	case IOCTL_BLKSNAP_FILTER_CTL: {
		struct blksnap_filter_request *r = arg;

		if (r->dev_major != FAKE_MAJOR || r->dev_minor >= FAKE_DEVICES)
			return -ENODEV;
		if (strcmp((const char *)r->name, BLKSNAP_FILTER_NAME))
			return -EINVAL;
		if (request == IOCTL_BLKSNAP_FILTER_ATTACH)
			return tracker_attach((int)r->dev_minor);
		if (request == IOCTL_BLKSNAP_FILTER_DETACH)
			return tracker_detach((int)r->dev_minor);
		return tracker_ctl((int)r->dev_minor, r->cmd,
				   (void *)(uintptr_t)r->opt, r->optlen);
	}
	}
	if (!snapshots_on &&
	    (request == IOCTL_BLKSNAP_SNAPSHOT_CREATE ||
	     request == IOCTL_BLKSNAP_SNAPSHOT_DESTROY ||
	     request == IOCTL_BLKSNAP_SNAPSHOT_TAKE ||
	     request == IOCTL_BLKSNAP_SNAPSHOT_COLLECT ||
	     request == IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT))
		return -EOPNOTSUPP;
	switch (request) {
	case IOCTL_BLKSNAP_SNAPSHOT_CREATE: {
		struct blksnap_snapshot_create *c = arg;

		if (!c->diff_storage_limit_sect || !c->diff_storage_filename)
			return -EINVAL;
		/* The module's path checks, on the host's file system. */
		if (stat((const char *)(uintptr_t)c->diff_storage_filename,
			 &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
		    !S_ISBLK(st.st_mode))
			return -EINVAL;
		for (s = 0; s < MAX_SNAPSHOTS; s++) {
			if (!snapshots[s].used)
				break;
		}
		if (s == MAX_SNAPSHOTS)
			return -ENOMEM;
		memset(&snapshots[s], 0, sizeof(snapshots[s]));
		snapshots[s].used = 1;
		snapshot_serial++;
		for (int i = 0; i < 16; i++)
			snapshots[s].id.b[i] = (uint8_t)(snapshot_serial * 16 + i);
		c->id = snapshots[s].id;
		return 0;
	}
	case IOCTL_BLKSNAP_SNAPSHOT_DESTROY:
		s = find_snapshot(arg);
		if (s < 0)
			return -ENODEV;
		snapshots[s].used = 0;
		for (int i = 0; i < FAKE_DEVICES; i++)
			if (trackers[i].snapshot == s + 1)
				trackers[i].snapshot = 0;
		return 0;
	case IOCTL_BLKSNAP_SNAPSHOT_TAKE: {
		int n = 0;

		s = find_snapshot(arg);
		if (s < 0)
			return -ESRCH;
		if (snapshots[s].taken)
			return -EALREADY;
		for (int i = 0; i < FAKE_DEVICES; i++)
			if (trackers[i].snapshot == s + 1)
				n++;
		if (!n)
			return -ENODEV;
		snapshots[s].taken = 1;
		for (int i = 0; i < FAKE_DEVICES; i++)
			if (trackers[i].snapshot == s + 1) {
				struct fake_tracker *t = &trackers[i];

				memcpy(t->map, t->write_map, t->block_count);
				t->changes_number++;
			}
		return 0;
	}
	case IOCTL_BLKSNAP_SNAPSHOT_COLLECT: {
		struct blksnap_snapshot_collect *c = arg;
		struct blksnap_uuid *ids = (void *)(uintptr_t)c->ids;
		uint32_t n = 0, copied = 0;

		for (s = 0; s < MAX_SNAPSHOTS; s++)
			n += snapshots[s].used ? 1 : 0;
		if (!ids) {
			c->count = n;
			return 0;
		}
		for (s = 0; s < MAX_SNAPSHOTS; s++) {
			if (!snapshots[s].used)
				continue;
			if (copied == c->count) {
				c->count = copied;
				return -ENODATA;
			}
			ids[copied++] = snapshots[s].id;
		}
		c->count = copied;
		return 0;
	}
	case IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT: {
		struct blksnap_snapshot_event *e = arg;

		if (find_snapshot(&e->id) < 0)
			return -ESRCH;
		if (!event.queued)
			return -ENOENT;
		event.queued = 0;
		e->code = event.code;
		e->time_label = event.time_label;
		memcpy(e->data, event.data, sizeof(e->data));
		return 0;
	}
	default:
		return -ENOTTY;
	}
}

static int dev_request(int index, unsigned long request, void *arg)
{
	if (request != BLKFILTER_ATTACH && request != BLKFILTER_DETACH &&
	    request != BLKFILTER_CTL)
		return -ENOTTY;
	/* 2: our module's hook on a stock kernel, gone with the module. */
	if (!blkfilter || (blkfilter == 2 && !module_loaded))
		return -probe_errno;
	if (!arg)
		return -EFAULT;
	if (request == BLKFILTER_ATTACH) {
		struct blkfilter_attach *a = arg;

		if (strcmp((const char *)a->name, BLKSNAP_FILTER_NAME))
			return -EINVAL;
		return tracker_attach(index);
	}
	if (request == BLKFILTER_DETACH) {
		struct blkfilter_detach *d = arg;

		if (!module_loaded || !trackers[index].attached)
			return -ENOENT;
		if (strcmp((const char *)d->name, BLKSNAP_FILTER_NAME))
			return -EINVAL;
		return tracker_detach(index);
	} else {
		struct blkfilter_ctl *c = arg;

		if (!module_loaded || !trackers[index].attached)
			return -ENOENT;
		if (strcmp((const char *)c->name, BLKSNAP_FILTER_NAME))
			return -EINVAL;
		return tracker_ctl(index, c->cmd, (void *)(uintptr_t)c->opt,
				   c->optlen);
	}
}

int blksnap__sys_ioctl(int fd, unsigned long request, void *arg)
{
	int kind, index, ret;
	uint32_t len = _IOC_SIZE(request);

	if (fd < FD_BASE || fd >= FD_BASE + FD_SLOTS) {
		ret = ioctl(fd, request, arg);
		return ret < 0 ? -errno : ret;
	}
	pthread_mutex_lock(&lock);
	kind = fds[fd - FD_BASE].kind;
	index = fds[fd - FD_BASE].index;
	if (!kind) {
		pthread_mutex_unlock(&lock);
		return -EBADF;
	}
	if (ioctls < 4096)
		ioctl_log[ioctls] = request;
	ioctls++;
	last.kind = kind;
	last.request = request;
	last.len = len;
	last.has_ctl = 0;
	memset(last.arg, 0, COPY_MAX);
	if (arg)
		memcpy(last.arg, arg, len < COPY_MAX ? len : COPY_MAX);
	ret = armed(request);
	if (!ret) {
		if (kind == KIND_DEV)
			ret = dev_request(index, request, arg);
		else if (kind == KIND_CTL)
			ret = ctl_request(request, arg);
		else
			ret = -ENOTTY;
	}
	pthread_mutex_unlock(&lock);
	/* Let a wait look like one, outside the lock. */
	if (ret == -ENOENT && request == IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT) {
		struct blksnap_snapshot_event *e = arg;
		uint32_t ms = e->timeout_ms < 20 ? e->timeout_ms : 20;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

		nanosleep(&ts, NULL);
	}
	return ret;
}
