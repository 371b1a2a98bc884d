/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libblksnap: a small C library in front of the blksnap kernel module.
 *
 * Two opaque handles:
 *
 *  - struct blksnap_ctl: the control device (/dev/blksnap-control). Module
 *    version and the snapshot requests (create, destroy, take, collect,
 *    wait-event) go through it.
 *  - struct blksnap_dev: one block device (whole disk or partition). The
 *    tracker requests (attach, detach, cbtinfo, cbtmap, cbtdirty) and the
 *    per-device snapshot requests (snapshotadd, snapshotinfo) go through it.
 *
 * Transport (callers cannot tell which one is used): wherever the kernel
 * answers them, the per-device requests are BLKFILTER_ATTACH/DETACH/CTL on
 * the device's own fd: a kernel with the blkfilter patch, or our module on a
 * stock kernel (its hook on the block layer's ioctl entry points). Else
 * they are the module's IOCTL_BLKSNAP_FILTER_ATTACH/DETACH/CTL on the
 * control device, naming the device by major:minor (a stock kernel without
 * the module, or the module loaded with blkfilter_ioctls=0).
 * blksnap_dev_open() decides per handle by probing: it issues
 * BLKFILTER_DETACH with a NULL argument on the device fd. Whoever answers
 * BLKFILTER copies the argument first and answers -EFAULT (or a permission
 * error); a kernel without it passes the unknown request to the driver,
 * which answers -ENOTTY or -EINVAL. The probe has no side effect either
 * way. A device-fd request answered -ENOTTY or -EINVAL is probed again, and
 * the handle moves to the control device if the module stopped answering
 * on the fd (unloaded). blksnap_dev_transport() reports the decision.
 *
 * Conventions: every function that can fail returns 0 (or a non-negative
 * count where stated) on success and a negative errno on failure. No errno
 * or other thread-local state is part of the API, so any call may run on any
 * thread; one handle may be used from several threads at once, but it must
 * not be closed while another call on it is running. Results come back
 * through out-parameters. All types are fixed-width. The payload structs are
 * the kernel's own, from <blksnap.h> (kmod/uapi/blksnap.h).
 */
#ifndef LIBBLKSNAP_H
#define LIBBLKSNAP_H

#include <stdint.h>
#include <blksnap.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BLKSNAP_BUILDING_LIBRARY)
#define BLKSNAP_EXPORT __attribute__((visibility("default")))
#else
#define BLKSNAP_EXPORT
#endif

/* The library's version: major changes break the ABI. */
#define BLKSNAP_LIB_VERSION_MAJOR 1
#define BLKSNAP_LIB_VERSION_MINOR 0
#define BLKSNAP_LIB_VERSION_PATCH 0
#define BLKSNAP_LIB_VERSION                                                  \
	((BLKSNAP_LIB_VERSION_MAJOR << 16) | (BLKSNAP_LIB_VERSION_MINOR << 8) | \
	 BLKSNAP_LIB_VERSION_PATCH)

/* The path of the control device. */
#define BLKSNAP_CTL_PATH "/dev/" BLKSNAP_CTL

/* Values of blksnap_dev_transport(). */
#define BLKSNAP_TRANSPORT_BLKFILTER 1 /* BLKFILTER_* on the device fd */
#define BLKSNAP_TRANSPORT_CONTROL 2 /* IOCTL_BLKSNAP_FILTER_* by major:minor */

/* The largest CBT map piece one request carries; longer reads are split. */
#define BLKSNAP_CBTMAP_PIECE (1u << 20)

struct blksnap_ctl;
struct blksnap_dev;

/**
 * blksnap_lib_version() - The version of this library.
 *
 * Returns: (major << 16) | (minor << 8) | patch, BLKSNAP_LIB_VERSION of the
 * build. Callers check the major against the one they were written for.
 * Since: 1.0
 */
BLKSNAP_EXPORT uint32_t blksnap_lib_version(void);

/**
 * blksnap_ctl_open() - Open the control device.
 * @path: The control device's path, or NULL for BLKSNAP_CTL_PATH.
 * @out: Receives the handle; set to NULL on failure.
 *
 * Returns: 0 or -errno: -EINVAL (@out is NULL), -ENOENT (no control device:
 * the module is not loaded), -EACCES, -ENOMEM, -ENOTTY (@path is not a
 * character device).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_ctl_open(const char *path,
					struct blksnap_ctl **out);

/**
 * blksnap_ctl_close() - Close a control device handle. NULL is ignored.
 * @ctl: The handle; invalid afterwards.
 *
 * Since: 1.0
 */
BLKSNAP_EXPORT void blksnap_ctl_close(struct blksnap_ctl *ctl);

/**
 * blksnap_ctl_version() - The kernel module's version (for logs only).
 * @ctl: The control device.
 * @out: Receives major, minor, revision and build.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument), -ENOTTY (not a blksnap
 * control device).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_ctl_version(struct blksnap_ctl *ctl,
					   struct blksnap_version *out);

/**
 * blksnap_snapshot_create() - Create a snapshot (not yet taken).
 * @ctl: The control device.
 * @diff_storage: NUL-terminated path of the difference storage: a regular
 *	file, a directory (an unnamed temporary file is made in it) or a
 *	block device.
 * @limit_sect: The most the storage may grow to, in 512-byte sectors; > 0.
 * @id_out: Receives the new snapshot's id.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument, empty path, zero limit, or
 * a storage path of another type), -ENOSPC (the file is already larger than
 * the limit), -ENOENT, -EBUSY (a block device in use), -EPERM (needs
 * CAP_SYS_ADMIN), -EOPNOTSUPP (the module does not do snapshots yet).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_snapshot_create(struct blksnap_ctl *ctl,
					       const char *diff_storage,
					       uint64_t limit_sect,
					       struct blksnap_uuid *id_out);

/**
 * blksnap_snapshot_destroy() - Destroy a snapshot: remove its images and
 *	release its difference storage. Trackers keep tracking.
 * @ctl: The control device.
 * @id: The snapshot.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument), -ENODEV (no such snapshot),
 * -EPERM.
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_snapshot_destroy(struct blksnap_ctl *ctl,
						const struct blksnap_uuid *id);

/**
 * blksnap_snapshot_take() - Take a snapshot: freeze, switch the CBT maps,
 *	start copy-on-write and create the images, for all its devices at the
 *	same instant.
 * @ctl: The control device.
 * @id: The snapshot.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument), -ESRCH (no such snapshot),
 * -ENODEV (no devices in it), -EALREADY (already taken), -EFAULT (a
 * difference area failed at once), -EPERM.
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_snapshot_take(struct blksnap_ctl *ctl,
					     const struct blksnap_uuid *id);

/**
 * blksnap_snapshot_collect() - List the ids of all snapshots.
 * @ctl: The control device.
 * @ids: Receives up to @capacity ids; may be NULL when @capacity is 0.
 * @capacity: The number of entries @ids can hold.
 * @count: Receives the number of snapshots when @ids is NULL, otherwise the
 *	number of ids copied.
 *
 * Call it once with @ids NULL for the count, then again with an array.
 *
 * Returns: 0 or -errno: -EINVAL (@count NULL, or @ids NULL with @capacity
 * not 0), -ENODATA (@capacity too small; @count holds the number copied).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_snapshot_collect(struct blksnap_ctl *ctl,
						struct blksnap_uuid *ids,
						uint32_t capacity,
						uint32_t *count);

/**
 * blksnap_snapshot_wait_event() - Wait for the next event of a snapshot.
 *	Blocks up to @timeout_ms: call it from a worker thread.
 * @ctl: The control device.
 * @id: The snapshot.
 * @timeout_ms: How long to wait, in milliseconds.
 * @event: Receives the event (4096 bytes): code, time_label and data.
 *
 * Returns: 0 (an event is in @event) or -errno: -ENOENT (the timeout passed
 * with no event), -EINTR (interrupted), -ESRCH (no such snapshot: it was
 * destroyed), -EINVAL (NULL argument).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t
blksnap_snapshot_wait_event(struct blksnap_ctl *ctl,
			    const struct blksnap_uuid *id, uint32_t timeout_ms,
			    struct blksnap_snapshot_event *event);

/**
 * blksnap_dev_open() - Open a block device for tracker requests.
 * @path: NUL-terminated path of a block device (whole disk or partition).
 * @out: Receives the handle; set to NULL on failure.
 *
 * Opens the device read-only (never exclusively), and decides the transport
 * (see the top of this header). On the control-device transport the control
 * device is opened at the first request that needs it, so opening succeeds
 * without the module, and requests then fail with -ENOENT.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument or empty path), -ENOTBLK
 * (@path is not a block device), -ENOENT, -EACCES, -ENOMEM.
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_open(const char *path,
					struct blksnap_dev **out);

/**
 * blksnap_dev_close() - Close a device handle. NULL is ignored.
 * @dev: The handle; invalid afterwards.
 *
 * Since: 1.0
 */
BLKSNAP_EXPORT void blksnap_dev_close(struct blksnap_dev *dev);

/**
 * blksnap_dev_transport() - Which transport a device handle uses.
 * @dev: The device.
 *
 * Returns: BLKSNAP_TRANSPORT_BLKFILTER, BLKSNAP_TRANSPORT_CONTROL, or
 * -EINVAL (@dev is NULL).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_transport(const struct blksnap_dev *dev);

/**
 * blksnap_dev_number() - The device's number.
 * @dev: The device.
 * @major: Receives the major.
 * @minor: Receives the minor.
 *
 * Returns: 0 or -EINVAL (NULL argument).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_number(const struct blksnap_dev *dev,
					  uint32_t *major, uint32_t *minor);

/**
 * blksnap_dev_attach() - Attach the tracker (start change tracking).
 * @dev: The device.
 *
 * Returns: 0 or -errno: -EALREADY (already attached: not a failure for most
 * callers), -EBUSY (another filter is attached), -ENOENT (the module is not
 * loaded), -ENODEV (the disk is gone), -ENOMEM, -EPERM.
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_attach(struct blksnap_dev *dev);

/**
 * blksnap_dev_detach() - Detach the tracker; its CBT map is lost.
 * @dev: The device.
 *
 * A snapshot holding the device forgets it (a taken one marks its image of
 * the device corrupted).
 *
 * Returns: 0 or -errno: -ENOENT (not attached, or the module is not loaded),
 * -EINVAL (another filter is attached), -EPERM.
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_detach(struct blksnap_dev *dev);

/**
 * blksnap_dev_cbtinfo() - The tracker's CBT parameters.
 * @dev: The device.
 * @out: Receives capacity, block size and count, generation and changes
 *	number.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument), -ENOENT (not attached),
 * -ESRCH (no map).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_cbtinfo(struct blksnap_dev *dev,
					   struct blksnap_cbtinfo *out);

/**
 * blksnap_dev_cbtmap() - Read part of the CBT map (the read map: one byte
 *	per tracking block, the number of the snapshot that last changed it).
 *	Long reads are split in BLKSNAP_CBTMAP_PIECE requests; each request
 *	is consistent, the whole is not if a snapshot is taken meanwhile.
 * @dev: The device.
 * @offset: The first block.
 * @length: The number of blocks (bytes) to read; > 0.
 * @buf: Receives @length bytes.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument, zero length, or
 * @offset + @length past 2^32), -ENODATA (past the end of the map), -EFAULT
 * (the map is corrupted), -ENOENT (not attached), -EAGAIN (a snapshot was
 * taken while a request copied: read again).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_cbtmap(struct blksnap_dev *dev,
					  uint32_t offset, uint32_t length,
					  uint8_t *buf);

/**
 * blksnap_dev_cbtdirty() - Mark sector ranges changed in both CBT maps, so
 *	the next backup copies them.
 * @dev: The device.
 * @ranges: @count ranges of 512-byte sectors.
 * @count: The number of ranges; 0 does nothing. Split in requests of at
 *	most BLKSNAP_CBTDIRTY_MAX_RANGES.
 *
 * Returns: 0 or -errno: -EINVAL (@ranges NULL with @count not 0, or a range
 * past the device), -ENOENT (not attached), -EPERM.
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t
blksnap_dev_cbtdirty(struct blksnap_dev *dev,
		     const struct blksnap_sectors *ranges, uint32_t count);

/**
 * blksnap_dev_snapshot_add() - Add the device to a snapshot that is not yet
 *	taken. The tracker must be attached.
 * @dev: The device.
 * @id: The snapshot.
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument), -ESRCH (no such snapshot),
 * -EALREADY (already in it), -EBUSY (in another snapshot), -EPERM (the
 * device has data integrity or inline encryption), -ENOENT (not attached).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t blksnap_dev_snapshot_add(struct blksnap_dev *dev,
						const struct blksnap_uuid *id);

/**
 * blksnap_dev_snapshot_info() - The device's snapshot state.
 * @dev: The device.
 * @out: Receives the error code (0, or the -errno that corrupted the
 *	snapshot) and the image's disk name (empty until taken; both empty
 *	for a device in no snapshot).
 *
 * Returns: 0 or -errno: -EINVAL (NULL argument), -ENOENT (not attached).
 * Since: 1.0
 */
BLKSNAP_EXPORT int32_t
blksnap_dev_snapshot_info(struct blksnap_dev *dev,
			  struct blksnap_snapshotinfo *out);

#ifdef __cplusplus
}
#endif

#endif /* LIBBLKSNAP_H */
