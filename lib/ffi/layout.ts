/**
 * Sizes and field offsets of the kernel ABI structs that cross the FFI
 * boundary, mirrored from `kmod/uapi/blksnap.h` (x86_64 and every other
 * LP64 Linux: the header pads every struct explicitly). This is the only
 * place in the TypeScript code that knows a struct offset;
 * `tests/unit/layout_test.ts` compares every number here with the C
 * `sizeof`/`offsetof` of a probe compiled from the header.
 *
 * Each entry is `{ size, <field>: offset, ... }`, named as in C.
 *
 * @module
 */

/** Struct sizes and field offsets, keyed by the C struct name. */
export const layout = {
  blksnap_uuid: { size: 16, b: 0 },
  blksnap_version: { size: 8, major: 0, minor: 2, revision: 4, build: 6 },
  blksnap_snapshot_create: {
    size: 32,
    diff_storage_limit_sect: 0,
    diff_storage_filename: 8,
    id: 16,
  },
  blksnap_snapshot_collect: { size: 16, count: 0, padding: 4, ids: 8 },
  blksnap_snapshot_event: {
    size: 4096,
    id: 0,
    timeout_ms: 16,
    code: 20,
    time_label: 24,
    data: 32,
  },
  blksnap_event_corrupted: { size: 12, dev_id_mj: 0, dev_id_mn: 4, err_code: 8 },
  blksnap_event_no_space: { size: 8, requested_nr_sect: 0 },
  blksnap_cbtinfo: {
    size: 40,
    device_capacity: 0,
    block_size: 8,
    block_count: 12,
    generation_id: 16,
    changes_number: 32,
    padding: 33,
  },
  blksnap_sectors: { size: 16, offset: 0, count: 8 },
  blksnap_snapshotinfo: { size: 36, error_code: 0, image: 4 },
} as const;

/** Length of the image name field of `struct blksnap_snapshotinfo`. */
export const IMAGE_DISK_NAME_LEN = 32;

/** Size of the payload field of `struct blksnap_snapshot_event`. */
export const EVENT_DATA_LEN: number = layout.blksnap_snapshot_event.size -
  layout.blksnap_snapshot_event.data;

/** `enum blksnap_event_codes`. */
export const EventCode = {
  /** `blksnap_event_code_corrupted`. */
  corrupted: 0,
  /** `blksnap_event_code_no_space`. */
  noSpace: 1,
} as const;

/** The most ranges one CBTDIRTY request carries (`BLKSNAP_CBTDIRTY_MAX_RANGES`). */
export const CBTDIRTY_MAX_RANGES = 65536;
