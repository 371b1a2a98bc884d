/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * blksnap: change block tracking and copy-on-write snapshots of block devices.
 *
 * This is the one definition of the interface between the kernel module, the
 * C library (libblksnap) and the TypeScript layouts (lib/ffi/layout.ts, which a
 * test checks against this file). Nothing here may change once released: the
 * interface grows by adding ioctls and commands, never by editing old ones.
 *
 * Three groups of requests are defined:
 *
 *  1. The blksnap 2.0 control device ioctls (magic 'V', numbers 0..5), byte
 *     for byte as upstream.
 *  2. The block-device filter requests of the blkfilter patch (BLKFILTER_*,
 *     type 0x12, numbers 142..144, issued on the tracked device's fd) and the
 *     blksnap sub-commands they carry (cbtinfo, cbtmap, cbtdirty, snapshotadd,
 *     snapshotinfo), byte for byte as upstream.
 *  3. Our own extension for stock kernels that lack blkfilter: the same
 *     attach/detach/ctl requests sent to the control device, naming the
 *     device by major:minor (magic 'V', numbers 64..66), plus one testing
 *     request (number 80) answered only when the module is loaded with
 *     enable_test_ioctls=1.
 *
 * All structures are naturally aligned, padded explicitly, and carry user
 * pointers as __u64. Every size is asserted below.
 */
#ifndef _UAPI_LINUX_BLKSNAP_H
#define _UAPI_LINUX_BLKSNAP_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define BLKSNAP_CTL "blksnap-control"
#define BLKSNAP_IMAGE_NAME "blksnap"
#define BLKSNAP_IOCTL_MAGIC 'V'

/* The version reported by IOCTL_BLKSNAP_VERSION: for logs, not for features. */
#define BLKSNAP_VERSION_MAJOR 2
#define BLKSNAP_VERSION_MINOR 0
#define BLKSNAP_VERSION_REVISION 0
#define BLKSNAP_VERSION_BUILD 0

/**
 * struct blksnap_uuid - A 16-byte unique identifier (snapshot id, CBT
 *	generation id), in the byte order of the kernel's uuid_t.
 * @b: The bytes.
 */
struct blksnap_uuid {
	__u8 b[16];
};

/* ---------------------------------------------------------------------- */
/* 1. Control device ioctls (blksnap 2.0)                                 */
/* ---------------------------------------------------------------------- */

enum blksnap_ioctl {
	blksnap_ioctl_version,
	blksnap_ioctl_snapshot_create,
	blksnap_ioctl_snapshot_destroy,
	blksnap_ioctl_snapshot_take,
	blksnap_ioctl_snapshot_collect,
	blksnap_ioctl_snapshot_wait_event,
};

/**
 * struct blksnap_version - Module version.
 * @major: Major.
 * @minor: Minor.
 * @revision: Revision.
 * @build: Build.
 */
struct blksnap_version {
	__u16 major;
	__u16 minor;
	__u16 revision;
	__u16 build;
};

#define IOCTL_BLKSNAP_VERSION						\
	_IOR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_version,		\
	     struct blksnap_version)

/**
 * struct blksnap_snapshot_create - Argument of IOCTL_BLKSNAP_SNAPSHOT_CREATE.
 * @diff_storage_limit_sect: In: the largest size the difference storage may
 *	grow to, in 512-byte sectors. Must not be zero.
 * @diff_storage_filename: In: user pointer to a NUL-terminated path of a
 *	regular file, a directory (an unnamed temporary file is made in it) or
 *	a block device.
 * @id: Out: the new snapshot's id.
 */
struct blksnap_snapshot_create {
	__u64 diff_storage_limit_sect;
	__u64 diff_storage_filename;
	struct blksnap_uuid id;
};

#define IOCTL_BLKSNAP_SNAPSHOT_CREATE					\
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_create,	\
	      struct blksnap_snapshot_create)

#define IOCTL_BLKSNAP_SNAPSHOT_DESTROY					\
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_destroy,	\
	     struct blksnap_uuid)

#define IOCTL_BLKSNAP_SNAPSHOT_TAKE					\
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_take,		\
	     struct blksnap_uuid)

/**
 * struct blksnap_snapshot_collect - Argument of IOCTL_BLKSNAP_SNAPSHOT_COLLECT.
 * @count: In: the capacity of @ids in entries. Out: the number of snapshots
 *	(when @ids is 0) or the number of entries copied.
 * @padding: Zero.
 * @ids: In: user pointer to an array of struct blksnap_uuid, or 0 to ask for
 *	the count only. Too small an array gives -ENODATA.
 */
struct blksnap_snapshot_collect {
	__u32 count;
	__u32 padding;
	__u64 ids;
};

#define IOCTL_BLKSNAP_SNAPSHOT_COLLECT					\
	_IOR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_collect,	\
	     struct blksnap_snapshot_collect)

enum blksnap_event_codes {
	blksnap_event_code_corrupted,
	blksnap_event_code_no_space,
};

/**
 * struct blksnap_snapshot_event - Argument of
 *	IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT.
 * @id: In: the snapshot.
 * @timeout_ms: In: how long to wait, in milliseconds.
 * @code: Out: enum blksnap_event_codes.
 * @time_label: Out: when the event happened (ktime, nanoseconds).
 * @data: Out: the event's payload (struct blksnap_event_corrupted or
 *	struct blksnap_event_no_space).
 */
struct blksnap_snapshot_event {
	struct blksnap_uuid id;
	__u32 timeout_ms;
	__u32 code;
	__s64 time_label;
	__u8 data[4096 - 32];
};

#define IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT				\
	_IOR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_snapshot_wait_event,	\
	     struct blksnap_snapshot_event)

/**
 * struct blksnap_event_corrupted - Payload of blksnap_event_code_corrupted.
 * @dev_id_mj: Major of the original device.
 * @dev_id_mn: Minor of the original device.
 * @err_code: The error that corrupted the snapshot (negative errno).
 */
struct blksnap_event_corrupted {
	__u32 dev_id_mj;
	__u32 dev_id_mn;
	__s32 err_code;
};

/**
 * struct blksnap_event_no_space - Payload of blksnap_event_code_no_space.
 * @requested_nr_sect: The sectors the storage needed to grow by.
 */
struct blksnap_event_no_space {
	__u64 requested_nr_sect;
};

/* ---------------------------------------------------------------------- */
/* 2. Block-device filter requests (blkfilter) and blksnap sub-commands   */
/* ---------------------------------------------------------------------- */

#define BLKSNAP_FILTER_NAME "blksnap"

#ifndef BLKFILTER_NAME_LENGTH
#define BLKFILTER_NAME_LENGTH 32

/**
 * struct blkfilter_attach - Argument of BLKFILTER_ATTACH.
 * @name: The filter's name, "blksnap".
 * @opt: User pointer to options (reserved, ignored by blksnap).
 * @optlen: Length of @opt.
 * @reserved: Zero.
 */
struct blkfilter_attach {
	__u8 name[BLKFILTER_NAME_LENGTH];
	__u64 opt;
	__u32 optlen;
	__u32 reserved;
};

/**
 * struct blkfilter_detach - Argument of BLKFILTER_DETACH.
 * @name: The filter's name.
 */
struct blkfilter_detach {
	__u8 name[BLKFILTER_NAME_LENGTH];
};

/**
 * struct blkfilter_ctl - Argument of BLKFILTER_CTL.
 * @name: The filter's name.
 * @cmd: The sub-command (enum blkfilter_ctl_blksnap).
 * @optlen: Length of the buffer at @opt.
 * @opt: User pointer to the sub-command's payload.
 */
struct blkfilter_ctl {
	__u8 name[BLKFILTER_NAME_LENGTH];
	__u32 cmd;
	__u32 optlen;
	__u64 opt;
};

#define BLKFILTER_ATTACH _IOWR(0x12, 142, struct blkfilter_attach)
#define BLKFILTER_DETACH _IOWR(0x12, 143, struct blkfilter_detach)
#define BLKFILTER_CTL _IOWR(0x12, 144, struct blkfilter_ctl)
#endif /* BLKFILTER_NAME_LENGTH */

enum blkfilter_ctl_blksnap {
	BLKFILTER_CTL_BLKSNAP_CBTINFO,
	BLKFILTER_CTL_BLKSNAP_CBTMAP,
	BLKFILTER_CTL_BLKSNAP_CBTDIRTY,
	BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD,
	BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO,
};

/**
 * struct blksnap_cbtinfo - Payload of BLKFILTER_CTL_BLKSNAP_CBTINFO.
 * @device_capacity: The device's capacity in bytes.
 * @block_size: The tracking block size in bytes.
 * @block_count: The number of tracking blocks (map bytes).
 * @generation_id: The map's generation; a new one means "back up in full".
 * @changes_number: The number of the last snapshot taken.
 * @padding: Zero.
 */
struct blksnap_cbtinfo {
	__u64 device_capacity;
	__u32 block_size;
	__u32 block_count;
	struct blksnap_uuid generation_id;
	__u8 changes_number;
	__u8 padding[7];
};

/**
 * struct blksnap_cbtmap - Payload of BLKFILTER_CTL_BLKSNAP_CBTMAP.
 * @offset: The first block (map byte) to read.
 * @length: How many bytes to read; offset + length must not pass
 *	block_count, and length must not be zero.
 * @buffer: User pointer to at least @length bytes.
 */
struct blksnap_cbtmap {
	__u32 offset;
	__u32 length;
	__u64 buffer;
};

/**
 * struct blksnap_sectors - A range of sectors.
 * @offset: The first sector.
 * @count: The number of sectors.
 */
struct blksnap_sectors {
	__u64 offset;
	__u64 count;
};

/**
 * struct blksnap_cbtdirty - Payload of BLKFILTER_CTL_BLKSNAP_CBTDIRTY.
 * @count: The number of ranges at @dirty_sectors (at most
 *	BLKSNAP_CBTDIRTY_MAX_RANGES).
 * @padding: Zero.
 * @dirty_sectors: User pointer to an array of struct blksnap_sectors.
 */
struct blksnap_cbtdirty {
	__u32 count;
	__u32 padding;
	__u64 dirty_sectors;
};

/* The most ranges one CBTDIRTY request may carry. */
#define BLKSNAP_CBTDIRTY_MAX_RANGES 65536

/**
 * struct blksnap_snapshotadd - Payload of BLKFILTER_CTL_BLKSNAP_SNAPSHOTADD.
 * @id: The snapshot to add the device to.
 */
struct blksnap_snapshotadd {
	struct blksnap_uuid id;
};

#define IMAGE_DISK_NAME_LEN 32

/**
 * struct blksnap_snapshotinfo - Payload of
 *	BLKFILTER_CTL_BLKSNAP_SNAPSHOTINFO.
 * @error_code: 0, or the negative errno that corrupted the snapshot
 *	(-ENOSPC: the difference storage overflowed).
 * @image: The image's disk name (NUL-terminated), empty until taken.
 */
struct blksnap_snapshotinfo {
	__s32 error_code;
	__u8 image[IMAGE_DISK_NAME_LEN];
};

/* ---------------------------------------------------------------------- */
/* 3. Stock-kernel extension: filter requests through the control device  */
/* ---------------------------------------------------------------------- */

enum blksnap_ioctl_ext {
	blksnap_ioctl_filter_attach = 64,
	blksnap_ioctl_filter_detach = 65,
	blksnap_ioctl_filter_ctl = 66,
	blksnap_ioctl_test_cbt_switch = 80,
};

/**
 * struct blksnap_filter_request - Argument of the control device's filter
 *	requests: BLKFILTER_ATTACH/DETACH/CTL addressed by device number.
 * @dev_major: Major of the block device (whole disk or partition).
 * @dev_minor: Minor of the block device.
 * @name: The filter's name, "blksnap".
 * @cmd: For IOCTL_BLKSNAP_FILTER_CTL: enum blkfilter_ctl_blksnap. Else 0.
 * @optlen: Length of the buffer at @opt.
 * @opt: User pointer to the payload (0 for attach and detach).
 */
struct blksnap_filter_request {
	__u32 dev_major;
	__u32 dev_minor;
	__u8 name[BLKFILTER_NAME_LENGTH];
	__u32 cmd;
	__u32 optlen;
	__u64 opt;
};

#define IOCTL_BLKSNAP_FILTER_ATTACH					\
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_filter_attach,		\
	      struct blksnap_filter_request)
#define IOCTL_BLKSNAP_FILTER_DETACH					\
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_filter_detach,		\
	      struct blksnap_filter_request)
#define IOCTL_BLKSNAP_FILTER_CTL					\
	_IOWR(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_filter_ctl,		\
	      struct blksnap_filter_request)

/*
 * Testing only: performs the CBT switch that a snapshot take performs, on
 * the tracker of the named device (name, cmd, optlen and opt are ignored).
 * Answered only when the module is loaded with enable_test_ioctls=1;
 * otherwise -ENOTTY. Not part of the released interface.
 */
#define IOCTL_BLKSNAP_TEST_CBT_SWITCH					\
	_IOW(BLKSNAP_IOCTL_MAGIC, blksnap_ioctl_test_cbt_switch,	\
	     struct blksnap_filter_request)

/* ---------------------------------------------------------------------- */
/* Sizes                                                                  */
/* ---------------------------------------------------------------------- */

_Static_assert(sizeof(struct blksnap_uuid) == 16, "blksnap_uuid");
_Static_assert(sizeof(struct blksnap_version) == 8, "blksnap_version");
_Static_assert(sizeof(struct blksnap_snapshot_create) == 32,
	       "blksnap_snapshot_create");
_Static_assert(sizeof(struct blksnap_snapshot_collect) == 16,
	       "blksnap_snapshot_collect");
_Static_assert(sizeof(struct blksnap_snapshot_event) == 4096,
	       "blksnap_snapshot_event");
_Static_assert(sizeof(struct blksnap_event_corrupted) == 12,
	       "blksnap_event_corrupted");
_Static_assert(sizeof(struct blksnap_event_no_space) == 8,
	       "blksnap_event_no_space");
_Static_assert(sizeof(struct blkfilter_attach) == 48, "blkfilter_attach");
_Static_assert(sizeof(struct blkfilter_detach) == 32, "blkfilter_detach");
_Static_assert(sizeof(struct blkfilter_ctl) == 48, "blkfilter_ctl");
_Static_assert(sizeof(struct blksnap_cbtinfo) == 40, "blksnap_cbtinfo");
_Static_assert(sizeof(struct blksnap_cbtmap) == 16, "blksnap_cbtmap");
_Static_assert(sizeof(struct blksnap_sectors) == 16, "blksnap_sectors");
_Static_assert(sizeof(struct blksnap_cbtdirty) == 16, "blksnap_cbtdirty");
_Static_assert(sizeof(struct blksnap_snapshotadd) == 16,
	       "blksnap_snapshotadd");
_Static_assert(sizeof(struct blksnap_snapshotinfo) == 36,
	       "blksnap_snapshotinfo");
_Static_assert(sizeof(struct blksnap_filter_request) == 56,
	       "blksnap_filter_request");

#endif /* _UAPI_LINUX_BLKSNAP_H */
