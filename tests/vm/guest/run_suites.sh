#!/bin/sh
# Runs the in-VM suites (tests/vm/suites/*.sh and *_test.ts) one by one with a
# fresh module load, and writes one TAP stream to /dev/ttyS1:
#   ok - [suite] description
# Each suite also gets a test for its own exit, its kernel log and the
# module's unload. Arguments: TAGS [NAME-FILTER...]; TAGS is "" (every
# suite) or a comma-separated list: a suite runs when its `# vm-tags:` line
# names one of them and no "!tag" of the list.
tags=$1
shift
results=/dev/ttyS1
suite_timeout=${BLKSNAP_SUITE_TIMEOUT:-900}
bad=$(cat /project/tests/vm/guest/kernel_log_problems.ere)
failed=0

# TAGS "!T" excludes the suites tagged T; with only exclusions, every other
# suite runs.
tagged() { # file
	local t suite_tags wanted_any=0 hit=0
	[ -z "$tags" ] && return 0
	# `# vm-tags:` in a shell suite, `// vm-tags:` in a TypeScript one
	suite_tags=" $(sed -n -e 's/^# vm-tags: *//p' -e 's|^// vm-tags: *||p' "$1" | head -n 1 | tr ',' ' ') "
	for t in $(echo "$tags" | tr ',' ' '); do
		case "$t" in
		!*) case "$suite_tags" in *" ${t#!} "*) return 1 ;; esac ;;
		*)
			wanted_any=1
			case "$suite_tags" in *" $t "*) hit=1 ;; esac
			;;
		esac
	done
	[ $wanted_any -eq 0 ] || [ $hit -eq 1 ]
}

wanted() { # file
	tagged "$1" || return 1
	[ -z "$FILTERS" ] && return 0
	for f in $FILTERS; do
		case "$1" in *"$f"*) return 0 ;; esac
	done
	return 1
}
FILTERS="$*"

tap() { echo "$*" >"$results"; echo "$*"; }

for file in /project/tests/vm/suites/*; do
	case "$file" in *.sh | *_test.ts) ;; *) continue ;; esac
	wanted "$file" || continue
	name=$(basename "$file")
	name=${name%.sh}
	params=$(sed -n 's/^# vm-modparams: *//p' "$file" | head -n 1)
	echo "=== suite $name (module params: ${params:-none})"
	mark=$(dmesg | wc -l)
	started=$(date +%s)
	out=/tmp/suite.$name.out
	# shellcheck disable=SC2086
	if ! insmod /project/kmod/module/blksnap.ko $params; then
		tap "not ok - [$name] module loads"
		failed=1
		continue
	fi
	case "$file" in
	*.sh) timeout "$suite_timeout" sh "$file" >"$out" 2>&1 & ;;
	# --no-check: the host's check tier type-checks every suite; doing it again
	# under TCG costs minutes per suite.
	*.ts) timeout "$suite_timeout" deno test -A --cached-only --no-check --reporter=tap "$file" >"$out" 2>&1 & ;;
	esac
	pid=$!
	tail -f "$out" 2>/dev/null &
	tailpid=$!
	wait $pid
	src=$?
	# busybox tail -f looks for new data once a second: let it print the
	# end of the output (a failure's details come last) before it goes.
	sleep 1.2
	kill $tailpid 2>/dev/null
	# Top-level TAP results only (sub-steps are indented), renamed per suite.
	sed -n -e 's/^not ok\( [0-9][0-9]*\)\{0,1\}\( -\)\{0,1\} \(.*\)$/not ok - ['"$name"'] \3/p' \
		-e 's/^ok\( [0-9][0-9]*\)\{0,1\}\( -\)\{0,1\} \(.*\)$/ok - ['"$name"'] \3/p' "$out" >/tmp/suite.tap
	cat /tmp/suite.tap >"$results"
	if [ $src -ne 0 ]; then
		failed=1
		if ! grep -q '^not ok' /tmp/suite.tap; then
			tap "not ok - [$name] suite exits 0 (status $src$([ $src -eq 124 ] && echo ', timed out'))"
		fi
	fi
	grep -q '^not ok' /tmp/suite.tap && failed=1
	if grep -q '^blksnap ' /proc/modules; then
		if rmmod blksnap; then
			tap "ok - [$name] module unloads after the suite"
		else
			tap "not ok - [$name] module unloads after the suite"
			failed=1
		fi
	fi
	problems=$(dmesg | tail -n +"$((mark + 1))" | grep -E "$bad")
	if [ -n "$problems" ]; then
		tap "not ok - [$name] kernel log clean during the suite"
		echo "$problems" | head -n 20 | sed 's/^/#   /' >"$results"
		failed=1
	else
		tap "ok - [$name] kernel log clean during the suite"
	fi
	# What each suite costs, for the test command's time budget (docs/testing.md).
	tap "# [$name] took $(($(date +%s) - started)) s"
done
exit $failed
