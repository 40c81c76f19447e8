#!/bin/bash
# Run every test subject without checkpointing: start it the way the harness
# does (setsid, stdio on /dev/null, fresh temp cwd), wait for READY, wait
# DELAY seconds, send SIGTERM, expect PASS. Subjects must pass this way.
#   test/subjects/selftest.sh [-d DELAY] [-k] [NAME[:ARG,ARG]...]
# -k keeps the temp dirs. Exit status 0 iff all passed.
cd "$(dirname "$0")" || exit 2
DELAY=0.3
KEEP=0
while getopts "d:k" o; do
	case $o in
	d) DELAY=$OPTARG ;;
	k) KEEP=1 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
ALL="counter counter:30 static_counter mem mem:growsdown bigmem:64 regs sleep_nanosleep
sleep_pause futex_wait fifo_read signals identity files tls unsupported:socket
unsupported:thread unsupported:child unsupported:timer unsupported:deleted
fd_siblings fd_grandchild fd_twice fd_cycles fd_high fd_high:cycle fd_many fd_flags fd_dir fd_dir:big
fd_fifo fd_devnull fd_nofds fd_passed fd_threads fd_threads:unshared
pipes:data pipes:full pipes:shared pipes:halfclosed pipes:noreader pipes:nonblock pipes:leaverun
fifo_data:rw fifo_data:rdwr fifo_data:shared fifo_data:size
eventfd:zero eventfd:max eventfd:sem eventfd:blocking eventfd:shared signalfd:mask signalfd:block
timerfd:oneshot timerfd:soon timerfd:fired timerfd:periodic timerfd:abs timerfd:absperiodic timerfd:monoabs
timerfd:shared timerfd:cancelfired timerfd:disarmed timerfd:clocks pidfd:child pidfd:thread pidfd:exited pidfd:outside
inotify:watches inotify:block inotify:queued fanotify:marks fanotify:fid fanotify:queued fanotify:perm
locks:flock locks:mixed locks:posix locks:ofd locks:lease locks:wlease locks:outside locks:waiters
locks:shared_outside locks:breaking locks:sharedtable locks:threadtable
share:files share:fs share:chain share:tfiles share:tfs clonefiles"
[ $# -gt 0 ] && ALL="$*"
BIN=$PWD/bin
fails=0
# A subject and all its descendants (children that called setsid leave its
# process group, so the tree is walked): what a failed run must kill.
tree() {
	local p=$1 t c
	echo "$p"
	for t in /proc/"$p"/task/*; do
		for c in $(cat "$t/children" 2>/dev/null); do tree "$c"; done
	done
}
for spec in $ALL; do
	name=${spec%%:*}
	args=()
	[ "$spec" != "$name" ] && IFS=, read -r -a args <<<"${spec#*:}"
	dir=$(mktemp -d /tmp/ckpt-subject.XXXXXX)
	out=$dir/out
	(cd "$dir" && exec setsid "$BIN/$name" "$out" "${args[@]}" </dev/null >/dev/null 2>&1) &
	pid=$!
	verdict=
	for _ in $(seq 200); do
		grep -qx READY "$out" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	if ! grep -qx READY "$out" 2>/dev/null; then
		verdict="no READY"
	else
		sleep "$DELAY"
		left=$(tree $pid)
		kill -TERM $pid
		for _ in $(seq 200); do
			kill -0 $pid 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 $pid 2>/dev/null; then
			verdict="still running after SIGTERM"
		else
			verdict=$(grep -E '^(PASS|FAIL)' "$out" | tail -1)
			[ -z "$verdict" ] && verdict="no verdict"
		fi
	fi
	kill -KILL $(tree $pid) 2>/dev/null
	wait $pid 2>/dev/null
	rc=$?
	# (descendants that outlived the root, as after a FAIL: none may stay behind)
	for p in $left; do
		case $(tr '\0' ' ' 2>/dev/null </proc/"$p"/cmdline) in "$BIN"/*) kill -KILL "$p" 2>/dev/null ;; esac
	done
	left=
	printf '%-24s %s (exit %d)\n' "$spec" "$verdict" $rc
	[ "$verdict" = PASS ] && [ $rc -eq 0 ] || fails=$((fails + 1))
	[ $KEEP = 1 ] || rm -rf "$dir"
done
echo "failures: $fails"
[ $fails -eq 0 ]
