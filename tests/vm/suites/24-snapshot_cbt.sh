#!/bin/sh
# The CBT contract across snapshot takes: while a snapshot is held the read
# map does not change, whatever is written; after the next take, the blocks
# marked above the previous changes number are exactly the blocks written
# since the previous take (raw device, nothing else writes to it).
# vm-modparams: diff_storage_minimum=16384
. /project/tests/vm/lib.sh

DEV=/dev/ram0

cbt_field() { cbt_tool info $DEV | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# write_blocks BLOCK...: 4 KiB at the start of each tracking block.
write_blocks() {
	for b in "$@"; do
		dd if=/dev/urandom of=$DEV bs=4096 count=1 seek=$((b * BS / 4096)) \
			oflag=direct conv=notrunc 2>/dev/null || return 1
	done
}

# above N: the blocks whose read-map value is above N, space-separated.
above() { cbt_tool map $DEV | awk -v n="$1" '$2 > n {printf "%s ", $1}' | sed 's/ $//'; }

take() {
	ID=$(snap_ctl create /dev/shm 1048576) && snap_ctl add "$ID" $DEV && snap_ctl take "$ID"
}

check "attach $DEV" snap_ctl attach $DEV
BS=$(cbt_field block_size)
check "tracking block size known ($BS)" test -n "$BS"

step "take 1" take
C1=$(cbt_field changes_number)
cbt_tool map $DEV >/tmp/m1
check "write blocks 3 17 100 while snapshot 1 is held" write_blocks 3 17 100
cbt_tool map $DEV >/tmp/m1b
check "the read map did not change while held" cmp /tmp/m1 /tmp/m1b
check "destroy 1" snap_ctl destroy "$ID"
check "write block 555 with no snapshot held" write_blocks 555

step "take 2" take
C2=$(cbt_field changes_number)
check "changes_number advanced by one ($C1 -> $C2)" test "$C2" -eq $((C1 + 1))
check "blocks above $C1 are exactly 3 17 100 555" test "$(above "$C1")" = "3 17 100 555"
cbt_tool map $DEV >/tmp/m2
check "write blocks 0 17 1000 while snapshot 2 is held" write_blocks 0 17 1000
cbt_tool map $DEV >/tmp/m2b
check "the read map did not change while held" cmp /tmp/m2 /tmp/m2b
check "destroy 2" snap_ctl destroy "$ID"

step "take 3" take
C3=$(cbt_field changes_number)
check "blocks above $C2 are exactly 0 17 1000" test "$(above "$C2")" = "0 17 1000"
check "blocks above $C1 are the union 0 3 17 100 555 1000" test "$(above "$C1")" = "0 3 17 100 555 1000"
check "destroy 3" snap_ctl destroy "$ID"
check "detach $DEV" snap_ctl detach $DEV
tap_done
