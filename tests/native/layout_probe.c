// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Prints, as JSON, sizeof and offsetof of every kernel ABI struct that
 * lib/ffi/layout.ts mirrors, compiled from kmod/uapi/blksnap.h. The layout
 * test (tests/unit/layout_test.ts) compiles and runs it and compares.
 */
#include <stddef.h>
#include <stdio.h>

#include <blksnap.h>

static int first_struct = 1, first_field;

static void begin(const char *name, size_t size)
{
	printf("%s\"%s\":{\"size\":%zu", first_struct ? "" : ",", name, size);
	first_struct = 0;
	first_field = 0;
}

#define STRUCT(s) begin(#s, sizeof(struct s))
#define FIELD(s, f) printf(",\"%s\":%zu", #f, offsetof(struct s, f))
#define END() printf("}")

int main(void)
{
	(void)first_field;
	printf("{");
	STRUCT(blksnap_uuid);
	FIELD(blksnap_uuid, b);
	END();
	STRUCT(blksnap_version);
	FIELD(blksnap_version, major);
	FIELD(blksnap_version, minor);
	FIELD(blksnap_version, revision);
	FIELD(blksnap_version, build);
	END();
	STRUCT(blksnap_snapshot_create);
	FIELD(blksnap_snapshot_create, diff_storage_limit_sect);
	FIELD(blksnap_snapshot_create, diff_storage_filename);
	FIELD(blksnap_snapshot_create, id);
	END();
	STRUCT(blksnap_snapshot_collect);
	FIELD(blksnap_snapshot_collect, count);
	FIELD(blksnap_snapshot_collect, padding);
	FIELD(blksnap_snapshot_collect, ids);
	END();
	STRUCT(blksnap_snapshot_event);
	FIELD(blksnap_snapshot_event, id);
	FIELD(blksnap_snapshot_event, timeout_ms);
	FIELD(blksnap_snapshot_event, code);
	FIELD(blksnap_snapshot_event, time_label);
	FIELD(blksnap_snapshot_event, data);
	END();
	STRUCT(blksnap_event_corrupted);
	FIELD(blksnap_event_corrupted, dev_id_mj);
	FIELD(blksnap_event_corrupted, dev_id_mn);
	FIELD(blksnap_event_corrupted, err_code);
	END();
	STRUCT(blksnap_event_no_space);
	FIELD(blksnap_event_no_space, requested_nr_sect);
	END();
	STRUCT(blksnap_cbtinfo);
	FIELD(blksnap_cbtinfo, device_capacity);
	FIELD(blksnap_cbtinfo, block_size);
	FIELD(blksnap_cbtinfo, block_count);
	FIELD(blksnap_cbtinfo, generation_id);
	FIELD(blksnap_cbtinfo, changes_number);
	FIELD(blksnap_cbtinfo, padding);
	END();
	STRUCT(blksnap_sectors);
	FIELD(blksnap_sectors, offset);
	FIELD(blksnap_sectors, count);
	END();
	STRUCT(blksnap_snapshotinfo);
	FIELD(blksnap_snapshotinfo, error_code);
	FIELD(blksnap_snapshotinfo, image);
	END();
	printf("}\n");
	return 0;
}
