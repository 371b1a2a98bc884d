// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libblksnap: the blksnap ioctls as plain functions (see libblksnap.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "libblksnap.h"
#include "sys.h"

struct blksnap_ctl {
	int fd;
};

struct blksnap_dev {
	/* The block device, open read-only. */
	int fd;
	uint32_t major;
	uint32_t minor;
	/*
	 * BLKSNAP_TRANSPORT_*, decided in blksnap_dev_open(); changes once,
	 * from BLKFILTER to CONTROL, when the module stops answering on the
	 * fd (see dev_request()). Accessed atomically.
	 */
	int transport;
	/*
	 * The control device for BLKSNAP_TRANSPORT_CONTROL: -1 until the first
	 * request opens it. Set once with a compare-and-swap, so concurrent
	 * requests on one handle race safely (the loser closes its fd).
	 */
	int ctl_fd;
};

uint32_t blksnap_lib_version(void)
{
	return BLKSNAP_LIB_VERSION;
}

/* ---------------------------------------------------------------------- */
/* Control device                                                         */
/* ---------------------------------------------------------------------- */

int32_t blksnap_ctl_open(const char *path, struct blksnap_ctl **out)
{
	struct blksnap_ctl *ctl;
	struct stat st;
	int fd, ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path)
		path = BLKSNAP_CTL_PATH;
	if (!path[0])
		return -EINVAL;
	fd = blksnap__sys_open(path, O_RDWR);
	if (fd < 0)
		return fd;
	ret = blksnap__sys_fstat(fd, &st);
	if (ret < 0)
		goto err_close;
	if (!S_ISCHR(st.st_mode)) {
		ret = -ENOTTY;
		goto err_close;
	}
	ctl = malloc(sizeof(*ctl));
	if (!ctl) {
		ret = -ENOMEM;
		goto err_close;
	}
	ctl->fd = fd;
	*out = ctl;
	return 0;

err_close:
	blksnap__sys_close(fd);
	return ret;
}

void blksnap_ctl_close(struct blksnap_ctl *ctl)
{
	if (!ctl)
		return;
	blksnap__sys_close(ctl->fd);
	free(ctl);
}

int32_t blksnap_ctl_version(struct blksnap_ctl *ctl,
			    struct blksnap_version *out)
{
	if (!ctl || !out)
		return -EINVAL;
	return blksnap__sys_ioctl(ctl->fd, IOCTL_BLKSNAP_VERSION, out);
}

int32_t blksnap_snapshot_create(struct blksnap_ctl *ctl,
				const char *diff_storage, uint64_t limit_sect,
				struct blksnap_uuid *id_out)
{
	struct blksnap_snapshot_create arg;
	int ret;

	if (!ctl || !diff_storage || !diff_storage[0] || !limit_sect ||
	    !id_out)
		return -EINVAL;
	memset(&arg, 0, sizeof(arg));
	arg.diff_storage_limit_sect = limit_sect;
	arg.diff_storage_filename = (uint64_t)(uintptr_t)diff_storage;
	ret = blksnap__sys_ioctl(ctl->fd, IOCTL_BLKSNAP_SNAPSHOT_CREATE, &arg);
	if (ret < 0)
		return ret;
	memcpy(id_out, &arg.id, sizeof(*id_out));
	return 0;
}

static int32_t snapshot_uuid_request(struct blksnap_ctl *ctl,
				     unsigned long request,
				     const struct blksnap_uuid *id)
{
	struct blksnap_uuid arg;

	if (!ctl || !id)
		return -EINVAL;
	memcpy(&arg, id, sizeof(arg));
	return blksnap__sys_ioctl(ctl->fd, request, &arg);
}

int32_t blksnap_snapshot_destroy(struct blksnap_ctl *ctl,
				 const struct blksnap_uuid *id)
{
	return snapshot_uuid_request(ctl, IOCTL_BLKSNAP_SNAPSHOT_DESTROY, id);
}

int32_t blksnap_snapshot_take(struct blksnap_ctl *ctl,
			      const struct blksnap_uuid *id)
{
	return snapshot_uuid_request(ctl, IOCTL_BLKSNAP_SNAPSHOT_TAKE, id);
}

int32_t blksnap_snapshot_collect(struct blksnap_ctl *ctl,
				 struct blksnap_uuid *ids, uint32_t capacity,
				 uint32_t *count)
{
	struct blksnap_snapshot_collect arg;
	int ret;

	if (!ctl || !count || (!ids && capacity))
		return -EINVAL;
	memset(&arg, 0, sizeof(arg));
	arg.count = ids ? capacity : 0;
	arg.ids = (uint64_t)(uintptr_t)ids;
	ret = blksnap__sys_ioctl(ctl->fd, IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &arg);
	/* On -ENODATA the kernel reports how many it copied. */
	if (ret == 0 || ret == -ENODATA)
		*count = arg.count;
	return ret < 0 ? ret : 0;
}

int32_t blksnap_snapshot_wait_event(struct blksnap_ctl *ctl,
				    const struct blksnap_uuid *id,
				    uint32_t timeout_ms,
				    struct blksnap_snapshot_event *event)
{
	if (!ctl || !id || !event)
		return -EINVAL;
	memset(event, 0, sizeof(*event));
	memcpy(&event->id, id, sizeof(event->id));
	event->timeout_ms = timeout_ms;
	return blksnap__sys_ioctl(ctl->fd, IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT,
				  event);
}

/* ---------------------------------------------------------------------- */
/* Block devices                                                          */
/* ---------------------------------------------------------------------- */

/* The transport probe: see the top of libblksnap.h. */
static int probe_transport(int fd)
{
	int ret = blksnap__sys_ioctl(fd, BLKFILTER_DETACH, NULL);

	if (ret == -ENOTTY || ret == -EINVAL)
		return BLKSNAP_TRANSPORT_CONTROL;
	return BLKSNAP_TRANSPORT_BLKFILTER;
}

int32_t blksnap_dev_open(const char *path, struct blksnap_dev **out)
{
	struct blksnap_dev *dev;
	struct stat st;
	int fd, ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path || !path[0])
		return -EINVAL;
	/* Refuse anything else before opening it (a FIFO would block). */
	ret = blksnap__sys_stat(path, &st);
	if (ret < 0)
		return ret;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	fd = blksnap__sys_open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return fd;
	/* The path may have changed between stat and open. */
	ret = blksnap__sys_fstat(fd, &st);
	if (ret < 0)
		goto err_close;
	if (!S_ISBLK(st.st_mode)) {
		ret = -ENOTBLK;
		goto err_close;
	}
	dev = malloc(sizeof(*dev));
	if (!dev) {
		ret = -ENOMEM;
		goto err_close;
	}
	dev->fd = fd;
	dev->major = major(st.st_rdev);
	dev->minor = minor(st.st_rdev);
	dev->transport = probe_transport(fd);
	dev->ctl_fd = -1;
	*out = dev;
	return 0;

err_close:
	blksnap__sys_close(fd);
	return ret;
}

void blksnap_dev_close(struct blksnap_dev *dev)
{
	if (!dev)
		return;
	if (dev->ctl_fd >= 0)
		blksnap__sys_close(dev->ctl_fd);
	blksnap__sys_close(dev->fd);
	free(dev);
}

int32_t blksnap_dev_transport(const struct blksnap_dev *dev)
{
	return dev ? __atomic_load_n(&dev->transport, __ATOMIC_RELAXED) :
		     -EINVAL;
}

int32_t blksnap_dev_number(const struct blksnap_dev *dev, uint32_t *major,
			   uint32_t *minor)
{
	if (!dev || !major || !minor)
		return -EINVAL;
	*major = dev->major;
	*minor = dev->minor;
	return 0;
}

/* The control device fd of a BLKSNAP_TRANSPORT_CONTROL handle, or -errno. */
static int dev_ctl_fd(struct blksnap_dev *dev)
{
	int fd = __atomic_load_n(&dev->ctl_fd, __ATOMIC_ACQUIRE);
	int expected = -1;

	if (fd >= 0)
		return fd;
	fd = blksnap__sys_open(BLKSNAP_CTL_PATH, O_RDWR);
	if (fd < 0)
		return fd;
	if (!__atomic_compare_exchange_n(&dev->ctl_fd, &expected, fd, 0,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		blksnap__sys_close(fd);
		return expected;
	}
	return fd;
}

static void filter_name(uint8_t name[BLKFILTER_NAME_LENGTH])
{
	memset(name, 0, BLKFILTER_NAME_LENGTH);
	memcpy(name, BLKSNAP_FILTER_NAME, sizeof(BLKSNAP_FILTER_NAME) - 1);
}

/* An attach, detach or ctl request over the control device. */
static int control_request(struct blksnap_dev *dev, unsigned long request,
			   uint32_t cmd, void *opt, uint32_t optlen)
{
	struct blksnap_filter_request arg;
	int fd = dev_ctl_fd(dev);

	if (fd < 0)
		return fd;
	memset(&arg, 0, sizeof(arg));
	arg.dev_major = dev->major;
	arg.dev_minor = dev->minor;
	filter_name(arg.name);
	arg.cmd = cmd;
	arg.optlen = optlen;
	arg.opt = (uint64_t)(uintptr_t)opt;
	return blksnap__sys_ioctl(fd, request, &arg);
}

/* An attach, detach or ctl request on the device fd. */
static int blkfilter_request(struct blksnap_dev *dev, unsigned long request,
			     uint32_t cmd, void *opt, uint32_t optlen)
{
	union {
		struct blkfilter_attach attach;
		struct blkfilter_detach detach;
		struct blkfilter_ctl ctl;
	} arg;

	memset(&arg, 0, sizeof(arg));
	/* The name is the first field of all three. */
	filter_name(arg.ctl.name);
	if (request == BLKFILTER_CTL) {
		arg.ctl.cmd = cmd;
		arg.ctl.optlen = optlen;
		arg.ctl.opt = (uint64_t)(uintptr_t)opt;
	}
	return blksnap__sys_ioctl(dev->fd, request, &arg);
}

/*
 * A per-device request over the handle's transport: @fd_request
 * (BLKFILTER_*) on the device fd, or @ctl_request (IOCTL_BLKSNAP_FILTER_*)
 * on the control device.
 *
 * On a stock kernel the module answers on the device fd only while it is
 * loaded (its hook goes with it): a handle opened before an unload would
 * get the driver's -ENOTTY or -EINVAL. Such an answer is probed again; if
 * the probe now selects the control device, the request never reached the
 * module, and it is sent there (-ENOENT without the module), as is every
 * later request of the handle. An -ENOTTY or -EINVAL of the module itself
 * leaves the probe's answer unchanged and is returned.
 */
static int dev_request(struct blksnap_dev *dev, unsigned long fd_request,
		       unsigned long ctl_request, uint32_t cmd, void *opt,
		       uint32_t optlen)
{
	int ret;

	if (__atomic_load_n(&dev->transport, __ATOMIC_RELAXED) ==
	    BLKSNAP_TRANSPORT_BLKFILTER) {
		ret = blkfilter_request(dev, fd_request, cmd, opt, optlen);
		if ((ret != -ENOTTY && ret != -EINVAL) ||
		    probe_transport(dev->fd) == BLKSNAP_TRANSPORT_BLKFILTER)
			return ret;
		__atomic_store_n(&dev->transport, BLKSNAP_TRANSPORT_CONTROL,
				 __ATOMIC_RELAXED);
	}
	return control_request(dev, ctl_request, cmd, opt, optlen);
}

int32_t blksnap_dev_attach(struct blksnap_dev *dev)
{
	if (!dev)
		return -EINVAL;
	return dev_request(dev, BLKFILTER_ATTACH, IOCTL_BLKSNAP_FILTER_ATTACH, 0,
			   NULL, 0);
}

int32_t blksnap_dev_detach(struct blksnap_dev *dev)
{
	if (!dev)
		return -EINVAL;
	return dev_request(dev, BLKFILTER_DETACH, IOCTL_BLKSNAP_FILTER_DETACH, 0,
			   NULL, 0);
}

/* A blksnap sub-command, over whichever transport the handle uses. */
static int dev_ctl(struct blksnap_dev *dev, uint32_t cmd, void *opt,
		   uint32_t optlen)
{
	return dev_request(dev, BLKFILTER_CTL, IOCTL_BLKSNAP_FILTER_CTL, cmd, opt,
			   optlen);
}

int32_t blksnap_dev_cbtinfo(struct blksnap_dev *dev,
			    struct blksnap_cbtinfo *out)
{
	struct blksnap_cbtinfo info;
	int ret;

	if (!dev || !out)
		return -EINVAL;
	memset(&info, 0, sizeof(info));
	ret = dev_ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTINFO, &info, sizeof(info));
	if (ret < 0)
		return ret;
	memcpy(out, &info, sizeof(info));
	return 0;
}

int32_t blksnap_dev_cbtmap(struct blksnap_dev *dev, uint32_t offset,
			   uint32_t length, uint8_t *buf)
{
	struct blksnap_cbtmap arg;
	uint32_t done = 0;
	int ret;

	if (!dev || !buf || !length ||
	    (uint64_t)offset + length > (uint64_t)UINT32_MAX + 1)
		return -EINVAL;
	while (done < length) {
		uint32_t piece = length - done;

		if (piece > BLKSNAP_CBTMAP_PIECE)
			piece = BLKSNAP_CBTMAP_PIECE;
		memset(&arg, 0, sizeof(arg));
		arg.offset = offset + done;
		arg.length = piece;
		arg.buffer = (uint64_t)(uintptr_t)(buf + done);
		ret = dev_ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTMAP, &arg,
			      sizeof(arg));
		if (ret < 0)
			return ret;
		done += piece;
	}
	return 0;
}

int32_t blksnap_dev_cbtdirty(struct blksnap_dev *dev,
			     const struct blksnap_sectors *ranges,
			     uint32_t count)
{
	struct blksnap_cbtdirty arg;
	uint32_t done = 0;
	int ret;

	if (!dev || (!ranges && count))
		return -EINVAL;
	while (done < count) {
		uint32_t piece = count - done;

		if (piece > BLKSNAP_CBTDIRTY_MAX_RANGES)
			piece = BLKSNAP_CBTDIRTY_MAX_RANGES;
		memset(&arg, 0, sizeof(arg));
		arg.count = piece;
		arg.dirty_sectors = (uint64_t)(uintptr_t)(ranges + done);
		ret = dev_ctl(dev, BLKFILTER_CTL_BLKSNAP_CBTDIRTY, &arg,
			      sizeof(arg));
		if (ret < 0)
			return ret;
		done += piece;
	}
	return 0;
}

int32_t blksnap_dev_snapshot_add(struct blksnap_dev *dev,
				 const struct blksnap_uuid *id)
{
	struct blksnap_snapshotadd arg;

	if (!dev || !id)
		return -EINVAL;
	memcpy(&arg.id, id, sizeof(arg.id));
	return dev_ctl(dev, BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD, &arg,
		       sizeof(arg));
}

int32_t blksnap_dev_snapshot_info(struct blksnap_dev *dev,
				  struct blksnap_snapshotinfo *out)
{
	struct blksnap_snapshotinfo info;
	int ret;

	if (!dev || !out)
		return -EINVAL;
	memset(&info, 0, sizeof(info));
	ret = dev_ctl(dev, BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO, &info,
		      sizeof(info));
	if (ret < 0)
		return ret;
	/* Whatever the kernel wrote, hand out a terminated name. */
	info.image[IMAGE_DISK_NAME_LEN - 1] = 0;
	memcpy(out, &info, sizeof(info));
	return 0;
}
