/**
 * The symbol table of libblksnap (`kmod/ctl/libblksnap.h`), in the header's
 * order. The one place that declares native signatures.
 *
 * Pointers to handles are `"pointer"`; out-parameters and payload structs are
 * `"buffer"` (a `Uint8Array` or `BigUint64Array` owned by the caller); C
 * strings are `"buffer"` holding NUL-terminated UTF-8 (see `toCString`).
 * Every function that can fail returns `i32`: 0 or `-errno`.
 *
 * The `*_async` entries name the same C function with `nonblocking: true`:
 * they run on a worker thread and return a `Promise`, for the calls that can
 * block in the kernel (event waits) or take long (large map reads).
 *
 * @module
 */

/** The libblksnap symbols: `Deno.dlopen(path, symbols)`. */
export const symbols = {
  blksnap_lib_version: {
    parameters: [],
    result: "u32",
  },
  blksnap_ctl_open: {
    parameters: [
      "buffer", // const char *path (NULL: /dev/blksnap-control)
      "buffer", // struct blksnap_ctl **out
    ],
    result: "i32",
  },
  blksnap_ctl_close: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
    ],
    result: "void",
  },
  blksnap_ctl_version: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // struct blksnap_version *out
    ],
    result: "i32",
  },
  blksnap_snapshot_create: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // const char *diff_storage
      "u64", // uint64_t limit_sect
      "buffer", // struct blksnap_uuid *id_out
    ],
    result: "i32",
  },
  blksnap_snapshot_destroy: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // const struct blksnap_uuid *id
    ],
    result: "i32",
  },
  blksnap_snapshot_take: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // const struct blksnap_uuid *id
    ],
    result: "i32",
  },
  blksnap_snapshot_collect: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // struct blksnap_uuid *ids
      "u32", // uint32_t capacity
      "buffer", // uint32_t *count
    ],
    result: "i32",
  },
  blksnap_snapshot_wait_event: {
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // const struct blksnap_uuid *id
      "u32", // uint32_t timeout_ms
      "buffer", // struct blksnap_snapshot_event *event
    ],
    result: "i32",
  },
  blksnap_snapshot_wait_event_async: {
    name: "blksnap_snapshot_wait_event",
    parameters: [
      "pointer", // struct blksnap_ctl *ctl
      "buffer", // const struct blksnap_uuid *id
      "u32", // uint32_t timeout_ms
      "buffer", // struct blksnap_snapshot_event *event
    ],
    result: "i32",
    nonblocking: true,
  },
  blksnap_dev_open: {
    parameters: [
      "buffer", // const char *path
      "buffer", // struct blksnap_dev **out
    ],
    result: "i32",
  },
  blksnap_dev_close: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
    ],
    result: "void",
  },
  blksnap_dev_transport: {
    parameters: [
      "pointer", // const struct blksnap_dev *dev
    ],
    result: "i32",
  },
  blksnap_dev_number: {
    parameters: [
      "pointer", // const struct blksnap_dev *dev
      "buffer", // uint32_t *major
      "buffer", // uint32_t *minor
    ],
    result: "i32",
  },
  blksnap_dev_attach: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
    ],
    result: "i32",
  },
  blksnap_dev_detach: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
    ],
    result: "i32",
  },
  blksnap_dev_cbtinfo: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
      "buffer", // struct blksnap_cbtinfo *out
    ],
    result: "i32",
  },
  blksnap_dev_cbtmap: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
      "u32", // uint32_t offset
      "u32", // uint32_t length
      "buffer", // uint8_t *buf
    ],
    result: "i32",
  },
  blksnap_dev_cbtmap_async: {
    name: "blksnap_dev_cbtmap",
    parameters: [
      "pointer", // struct blksnap_dev *dev
      "u32", // uint32_t offset
      "u32", // uint32_t length
      "buffer", // uint8_t *buf
    ],
    result: "i32",
    nonblocking: true,
  },
  blksnap_dev_cbtdirty: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
      "buffer", // const struct blksnap_sectors *ranges
      "u32", // uint32_t count
    ],
    result: "i32",
  },
  blksnap_dev_snapshot_add: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
      "buffer", // const struct blksnap_uuid *id
    ],
    result: "i32",
  },
  blksnap_dev_snapshot_info: {
    parameters: [
      "pointer", // struct blksnap_dev *dev
      "buffer", // struct blksnap_snapshotinfo *out
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The symbol table's type. */
export type Symbols = typeof symbols;

/** An open libblksnap. */
export type BlksnapLibrary = Deno.DynamicLibrary<Symbols>;
