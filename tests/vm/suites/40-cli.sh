#!/bin/sh
# vm-tags: smoke, userland
# The blksnap CLI against the real module: the low-level commands (version,
# attach, cbtinfo, readcbtmap, markdirty, snapshot create/collect/take/info/
# wait-event/destroy, detach), their error exits, and the operator's
# commands (init, backup, list, verify, restore) on a raw loop device.
. /project/tests/vm/lib.sh
cd /project || exit 1
B="deno run -A --cached-only cli/main.ts"
W=$(mktemp -d /tmp/cli-suite.XXXXXX)
dd if=/dev/urandom of="$W/disk.img" bs=1M count=32 2>/dev/null
DEV=$(losetup -f) && losetup "$DEV" "$W/disk.img" || exit 1
trap 'losetup -d "$DEV" 2>/dev/null; rm -rf "$W"' EXIT

# field NAME FILE: the value of "NAME": in a JSON file (numbers and strings)
field() { sed -n "s/^ *\"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$2" | head -n 1; }

check "libblksnap uses the BLKFILTER requests on the device fd when the module answers them" \
	sh -c '[ "$(cat /sys/module/blksnap/parameters/blkfilter_ioctls)" = N ] || [ "$(deno eval --cached-only "import { Tracker } from \"./mod.ts\"; using t = Tracker.open(\"/dev/ram0\"); console.log(t.transport);")" = blkfilter ]'
check "version prints the module version" sh -c "[ \"\$($B version)\" = 2.0.0.0 ]"
check "version --json has the module version" sh -c "$B --json version | grep -q '\"moduleVersion\": \"2.0.0.0\"'"
check "attach a loop device" sh -c "$B attach -d $DEV | grep -q ': attached'"
check "attach again says already attached (exit 0)" sh -c "$B attach -d $DEV | grep -q 'already attached'"
$B --json cbtinfo -d "$DEV" >"$W/info.json"
check "cbtinfo --json: capacity of 32 MiB" sh -c "[ \"$(field deviceCapacity "$W/info.json")\" = 33554432 ]"
check "cbtinfo --json: changes number 0 after attach" sh -c "[ \"$(field changesNumber "$W/info.json")\" = 0 ]"
check "cbtinfo prints key=value lines" sh -c "$B cbtinfo -d $DEV | grep -q '^block_size=65536$'"
check "readcbtmap -f writes block_count bytes" sh -c \
	"$B readcbtmap -d $DEV -f $W/map >/dev/null && [ \$(stat -c %s $W/map) = $(field blockCount "$W/info.json") ]"

ID=$($B snapshot create -f "$W" -l 64M -d "$DEV")
check "snapshot create prints a UUID" sh -c "echo '$ID' | grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
check "snapshot collect lists it" sh -c "$B snapshot collect | grep -qx '$ID'"
check "snapshot info before take: no image" sh -c "$B snapshot info -d $DEV | grep -qx 'image='"
check "snapshot take" $B snapshot take -i "$ID"
check "snapshot take twice fails (exit 1, EALREADY)" sh -c \
	"$B snapshot take -i $ID 2>&1; [ \$? -eq 1 ]" 
IMG=$($B snapshot info -d "$DEV" --field image)
check "snapshot info --field image names /dev/blksnap-*" sh -c "echo '$IMG' | grep -q '^/dev/blksnap-'"
check "the image reads like the device" cmp "$IMG" "$DEV"
cp "$DEV" "$W/before.img"
dd if=/dev/urandom of="$DEV" bs=64k count=4 seek=10 conv=fsync 2>/dev/null
check "after a write to the device the image still holds the old data" cmp "$IMG" "$W/before.img"
check_fails "and the device holds the new data" cmp "$DEV" "$W/before.img"
check "snapshot wait-event times out with result=timeout" sh -c "$B snapshot wait-event -i $ID -t 200 | grep -qx 'result=timeout'"
check "snapshot info --json: error code 0" sh -c "$B --json snapshot info -d $DEV | grep -q '\"errorCode\": 0'"
check "snapshot destroy" $B snapshot destroy -i "$ID"
check "snapshot collect is empty after destroy" sh -c "[ -z \"\$($B snapshot collect)\" ]"
check "snapshot wait-event on a destroyed snapshot: result=not found" sh -c \
	"$B snapshot wait-event -i $ID -t 100 | grep -qx 'result=not found'"
check_fails "snapshot destroy of an unknown id fails" $B snapshot destroy -i "$ID"
check "an unknown snapshot id: exit 1 naming the errno" sh -c \
	"$B snapshot take -i $ID 2>&1 >/dev/null | grep -q 'errno'; $B snapshot take -i $ID >/dev/null 2>&1; [ \$? -eq 1 ]"
check "a malformed snapshot id is a usage error (exit 2)" sh -c \
	"$B snapshot take -i not-a-uuid >/dev/null 2>&1; [ \$? -eq 2 ]"
check "markdirty of sector ranges" sh -c "$B markdirty -d $DEV -r 0:8 4096:16 | grep -q 'marked 2 range'"
check "markdirty past the end fails (exit 1)" sh -c \
	"$B markdirty -d $DEV -r 999999999:8 >/dev/null 2>&1; [ \$? -eq 1 ]"
check "cbtinfo of a regular file fails (exit 1)" sh -c "$B cbtinfo -d $W/disk.img >/dev/null 2>&1; [ \$? -eq 1 ]"

# operator's commands on the raw device (nothing writes to it meanwhile).
# The marker lets 40-cli_control count the control-device requests they make.
echo "cli-suite: operator commands" >/sys/kernel/debug/tracing/trace_marker 2>/dev/null
check "init a repository" $B init -r "$W/repo" -c 256K --no-encryption
check "backup of the device (full)" sh -c "$B backup -r $W/repo -d $DEV -s $W -l 64M | grep -q 'full backup'"
# that backup's take froze the writes made during the first snapshot and the marks
$B readcbtmap -d "$DEV" --since 1 >"$W/map.txt"
check "readcbtmap --since 1 shows the write made under the snapshot" grep -qx 'extent offset=655360 length=262144' "$W/map.txt"
check "readcbtmap --since 1 shows the block marked at sector 0" grep -qx 'extent offset=0 length=65536' "$W/map.txt"
check "readcbtmap --since 1 shows the block marked at sector 4096" grep -qx 'extent offset=2097152 length=65536' "$W/map.txt"
dd if=/dev/urandom of="$DEV" bs=4k count=3 seek=1000 conv=fsync 2>/dev/null
$B --json backup -r "$W/repo" -d "$DEV" -s "$W" -l 64M >"$W/b2.json"
check "backup again is incremental" grep -q '"mode": "incremental"' "$W/b2.json"
check "the incremental read one 256 KiB chunk" grep -q '"bytesRead": 262144,' "$W/b2.json"
check "list shows two backups" sh -c "[ \$($B list -r $W/repo | wc -l) -eq 3 ]"
check "verify --deep is ok" $B verify -r "$W/repo" --deep
LAST=$($B --json list -r "$W/repo" | sed -n 's/^      "id": "\(.*\)",$/\1/p' | tail -n 1)
check "restore the last backup to a file" $B restore -r "$W/repo" "$LAST" "$W/restored.img"
check "the restored file equals the device" cmp "$W/restored.img" "$DEV"
check "detach" sh -c "$B detach -d $DEV | grep -q detached"
check "detach again fails (exit 1)" sh -c "$B detach -d $DEV >/dev/null 2>&1; [ \$? -eq 1 ]"
check "cbtinfo after detach fails (exit 1)" sh -c "$B cbtinfo -d $DEV >/dev/null 2>&1; [ \$? -eq 1 ]"
tap_done
