#!/usr/bin/env bash
# A real S3 server for the tests: a one-node Ceph cluster (one monitor, one
# memstore OSD, radosgw) on 127.0.0.1, from Debian's packages.
#
#   bash tests/s3/server.sh start    install what is missing, start, print `export` lines
#   bash tests/s3/server.sh env      print the `export` lines of the running server
#   bash tests/s3/server.sh status   exit 0 if it answers, 1 if not
#   bash tests/s3/server.sh stop     stop every daemon it started and remove its state
#
# Environment (all optional):
#   BLKSNAP_S3_STATE  state directory (mon data, logs, pid files) @default /var/tmp/blksnap-s3
#                     The monitor stops accepting writes below 5 % free space on this disk
#                     (mon_data_avail_crit), so put it on a roomy one; /tmp may be a small tmpfs.
#   BLKSNAP_S3_PORT   radosgw port @default 7480
#   BLKSNAP_S3_MON_PORT  monitor port @default 6789
#   BLKSNAP_S3_MEM    memstore size in bytes: the OSD holds all objects in RAM, up to this
#                     @default 4294967296 (4 GiB; the S3 tests store a few hundred MiB)
#
# Why Ceph: it is the only S3 server in Debian (no MinIO, Garage or SeaweedFS package), it
# enforces Object Lock, and it is what operators run on premises. bookworm ships Pacific 16.2.15,
# which refuses chunked uploads (411): clients must send a Content-Length.
set -euo pipefail

STATE=${BLKSNAP_S3_STATE:-/var/tmp/blksnap-s3}
PORT=${BLKSNAP_S3_PORT:-7480}
MON_PORT=${BLKSNAP_S3_MON_PORT:-6789}
MEM=${BLKSNAP_S3_MEM:-4294967296}
CONF=$STATE/ceph.conf
# The test user's keys: a throwaway server on loopback, so fixed keys are fine and let a
# second `start` in the same state reuse the user.
ACCESS_KEY=blksnap-test-access
SECRET_KEY=blksnap-test-secret-0123456789abcdef

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

log() { echo "s3-server: $*" >&2; }
die() {
	log "$*"
	# The logs say why; the state directory may be gone by the time anyone looks.
	tail -n 5 "$STATE"/log/*.log 2>/dev/null | sed 's/^/s3-server:   /' >&2 || true
	exit 1
}

ceph_cli() { timeout 30 ceph -c "$CONF" "$@"; }

endpoint() { echo "http://127.0.0.1:$PORT"; }

print_env() {
	echo "export BLKSNAP_S3_ENDPOINT=$(endpoint)"
	echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
	echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
	echo "export AWS_REGION=default"
}

answers() { curl -s -o /dev/null --max-time 2 "$(endpoint)/"; }

install_missing() {
	local missing=()
	command -v ceph-mon >/dev/null || missing+=(ceph-mon)
	command -v ceph-osd >/dev/null || missing+=(ceph-osd)
	command -v radosgw >/dev/null || missing+=(radosgw)
	command -v curl >/dev/null || missing+=(curl)
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; install them as root: apt-get install ${missing[*]}"
	log "installing ${missing[*]} from Debian (one time, about a minute)"
	# Only the package lists are fetched here; `apt-get update` is needed on a fresh machine.
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

write_conf() {
	local fsid
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = 127.0.0.1:$MON_PORT
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without auth, Pacific's clients loop on "get_initial_auth_request returned -13" unless the
# messenger runs in crc mode.
ms_mon_client_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_crush_chooseleaf_type = 0
# The script places the OSD in the CRUSH map itself. Left on, the OSD's own update at start
# sometimes races its first monmap and fails with "wrong fsid" (seen here 2 times in 4).
osd_crush_update_on_start = false
osd_class_update_on_start = false
osd_objectstore = memstore
memstore_device_bytes = $MEM
# Every path under the state directory: nothing in /etc/ceph, /var/lib/ceph or /var/run/ceph.
run_dir = $STATE/run
admin_socket = $STATE/run/\$name.asok
pid_file = $STATE/run/\$name.pid
log_file = $STATE/log/\$name.log
mon_data = $STATE/mon-\$id
osd_data = $STATE/osd-\$id
keyring = $STATE/keyring
mon_data_avail_warn = 10
[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$PORT
rgw_data = $STATE/rgw
# A backup writes thousands of objects per GiB; keep radosgw's own logging quiet.
debug_rgw = 0
debug_ms = 0
EOF
}

wait_for() { # seconds description command...
	local limit=$1 what=$2
	shift 2
	local i
	for ((i = 0; i < limit * 4; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.25
	done
	die "$what did not come up in ${limit}s (logs: $STATE/log)"
}

start() {
	if [ -f "$STATE/run/client.rgw.pid" ] && answers; then
		log "already running at $(endpoint)"
		print_env
		return 0
	fi
	[ -d "$STATE" ] && stop_daemons
	install_missing
	local t0=$SECONDS
	rm -rf "$STATE"
	mkdir -p "$STATE/run" "$STATE/log" "$STATE/rgw"
	write_conf
	local fsid
	fsid=$(sed -n 's/^fsid = //p' "$CONF")

	monmaptool --create --add a "127.0.0.1:$MON_PORT" --fsid "$fsid" "$STATE/monmap" >/dev/null
	ceph-mon -c "$CONF" --mkfs -i a --monmap "$STATE/monmap" >>"$STATE/log/start.log" 2>&1 ||
		die "ceph-mon --mkfs failed: $STATE/log/start.log"
	ceph-mon -c "$CONF" -i a >>"$STATE/log/start.log" 2>&1 || die "ceph-mon failed: $STATE/log/start.log"
	wait_for 30 "the monitor" ceph_cli -s

	local uuid id
	uuid=$(cat /proc/sys/kernel/random/uuid)
	# The uuid must be passed, or the OSD's mkfs fails with "wrong fsid".
	id=$(ceph_cli osd create "$uuid")
	mkdir -p "$STATE/osd-$id"
	ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" --osd-objectstore memstore \
		>>"$STATE/log/start.log" 2>&1 || die "ceph-osd --mkfs failed: $STATE/log/start.log"
	ceph_cli osd crush add "osd.$id" 1.0 host=localhost root=default >/dev/null 2>&1
	ceph-osd -c "$CONF" -i "$id" >>"$STATE/log/start.log" 2>&1 || die "ceph-osd failed: $STATE/log/start.log"
	wait_for 30 "the OSD" bash -c "ceph -c '$CONF' osd stat 2>/dev/null | grep -q '1 up'"

	# radosgw creates its pools on first start.
	radosgw -c "$CONF" -n client.rgw >>"$STATE/log/start.log" 2>&1 || die "radosgw failed: $STATE/log/start.log"
	wait_for 60 "radosgw" answers
	# As client.admin: client.rgw's admin socket belongs to the running radosgw.
	timeout 60 radosgw-admin -c "$CONF" user create --uid=blksnap-test \
		--display-name=blksnap-test --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
		>>"$STATE/log/start.log" 2>&1 || die "radosgw-admin user create failed: $STATE/log/start.log"
	print_env >"$STATE/env"
	log "up at $(endpoint) in $((SECONDS - t0)) s (state $STATE)"
	print_env
}

pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null || true; }

stop_daemons() {
	local f pid pids=()
	for f in "$STATE"/run/*.pid; do
		[ -e "$f" ] || continue
		pid=$(pid_of "$f")
		# Only our daemons: the pid must still run a Ceph binary with our config.
		if [ -n "$pid" ] && grep -qa -- "$CONF" "/proc/$pid/cmdline" 2>/dev/null; then
			kill "$pid" 2>/dev/null && pids+=("$pid")
		fi
	done
	local i
	for ((i = 0; i < 40; i++)); do
		local alive=0
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && return 0
		sleep 0.25
	done
	for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

stop() {
	[ -d "$STATE" ] || return 0
	stop_daemons
	rm -rf "$STATE"
	log "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env)
	[ -f "$STATE/env" ] || die "not running (no $STATE/env)"
	cat "$STATE/env"
	;;
status) answers ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
