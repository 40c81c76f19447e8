#!/bin/bash
# Check that the open-file subjects (fd_*.c) can FAIL: start each the way
# selftest.sh does (no checkpoint), wait for READY, break its state with
# tools/fdpoke the way a broken restore could, send SIGTERM, and expect FAIL
# with the reason given. Exit status 0 iff every case FAILed as expected.
#   test/subjects/tools/fdfail.sh [-v] [-p] [CASE-NUMBER...]
# -v shows what fdpoke did. -p builds the subjects with -DFDT_PROBE_ONLY
# (into a temporary directory): the comparison of the snapshots leaves the
# descriptions alone, so that the splits and merges must be caught by
# fdt_probe (O_NONBLOCK and offsets through one fd seen at the others).
# A case: subject (args comma-separated) | task | fdpoke operation | reason
# (an extended regex; a leading ! marks a case that only kcmp can catch,
# left out with -p: an O_PATH fd has no flags to change). Tasks: root, c0 (the root's first child), c0.c1
# (that child's second child), root.t2 (the root's second thread other than
# the leader), ...
cd "$(dirname "$0")/.." || exit 2
make -s all tools || exit 2
VERBOSE=0
PROBE=0
while [ "${1#-}" != "$1" ]; do
	case $1 in -v) VERBOSE=1 ;; -p) PROBE=1 ;; *) exit 2 ;; esac
	shift
done
CASES=(
"fd_siblings | c0 | reopen 7 | child A .* fd 3 and child A .* fd 7 were one open file description and are now two"
"fd_siblings | c1 | dup2 5 3 | child A .* fd 3 and child B .* fd 3 were separate open file descriptions and are now one"
"fd_siblings | c1 | lseek 3 101 | child B .* fd 3: offset 101, was 100"
"fd_grandchild | c0.c1 | reopen 12 | root .* fd 3 and grandchild G2 .* fd 12 were one open file description and are now two"
"fd_grandchild | c0 | close 5 | middle .* fd 5 is no longer open"
"fd_twice | root | dup2 5 6 | fd 5 and .* fd 6 were separate open file descriptions and are now one"
"fd_twice | c0 | dup2 6 10 | were separate open file descriptions and are now one"
"fd_cycles | c0 | dup2 3 4 | C1 .* fd 4: file dev/ino .*, was"
"fd_cycles | c2 | reopen 3 | root .* fd 3 and C3 .* fd 3 were one open file description and are now two"
"fd_cycles | c0.c0 | cloexec 9 1 | G1 .* fd 9: flags .* \(close-on-exec differs\)"
"fd_high | c0 | reopen 19998 | root .* fd 1000 and child .* fd 19998 were one open file description and are now two"
"fd_high | root | close 19999 | root .* fd 19999 is no longer open"
"fd_many | c0 | reopen 100 | root .* fd 100 and child A .* fd 100 were one open file description and are now two"
"fd_many | c0.c0 | cloexec 1001 1 | grandchild G .* fd 1001: flags .*close-on-exec differs"
"fd_flags | root | setfl 7 0 | fd 7: flags .*, were"
"fd_flags | c0 | cloexec 4 1 | child .* fd 4: flags .* \(close-on-exec differs\)"
"fd_flags | root | reopen 13 | !root .* fd 13 and child .* fd 13 were one open file description and are now two"
"fd_dir | c0 | reopen 6 | root .* fd 3 and child .* fd 6 were one open file description and are now two"
"fd_dir,big | c0 | lseek 6 0 | root .* fd 3: offset 0, was"
"fd_dir | c0 | dup2 3 4 | child .* fd 4: offset [0-9]+, was 0"
"fd_fifo | c0 | reopen 3 | root .* fd 3 and reader R .* fd 3 were one open file description and are now two"
"fd_fifo | c1 | dup2 6 7 | writer W .* fd 7: flags .*, were"
"fd_devnull | c2 | dup2 4 7 | root .* fd 4 and child 2 .* fd 7 were separate open file descriptions and are now one"
"fd_devnull | c0.c0 | dup2 0 12 | grandchild .* were separate open file descriptions and are now one"
"fd_nofds | c0.c0 | closeall | G1 .* fd 0 is no longer open"
"fd_nofds | c0 | open /dev/null | fd-less N .*: fd 0 is open and was not"
"fd_nofds | c0.c1 | dup2 0 5 | G2 .* fd 5: file dev/ino"
"fd_passed | c1 | reopen 3 | root .* fd 7 and child B .* fd 3 were one open file description and are now two"
"fd_passed | c0 | setfl 6 0 | child A .* fd 6: flags"
"fd_threads | root.t2 | unshare | after restore: tasks [0-9]+ and [0-9]+ have separate fd tables"
"fd_threads | c0.t1 | unshare | the child and its thread: tasks [0-9]+ and [0-9]+ have separate fd tables"
)

# The task named by a path like c0.c1 or root.t2, under the root pid $1.
task() {
	local pid=$1 path=$2 part
	IFS=. read -r -a parts <<<"$path"
	for part in "${parts[@]}"; do
		case $part in
		root) ;;
		c*) pid=$(cat /proc/$pid/task/*/children | tr ' ' '\n' | grep . | sed -n "$((${part#c} + 1))p") ;;
		t*) pid=$(ls /proc/$pid/task | sort -n | grep -vx "$pid" | sed -n "${part#t}p") ;;
		esac
		[ -n "$pid" ] || return 1
	done
	echo "$pid"
}

BIN=$PWD/bin
if [ $PROBE = 1 ]; then
	BIN=$(mktemp -d /tmp/ckpt-fdfail-bin.XXXXXX)
	trap 'rm -rf "$BIN"' EXIT
	for f in fd_*.c; do gcc -O1 -g -Wall -pthread -DFDT_PROBE_ONLY -o "$BIN/${f%.c}" "$f" || exit 2; done
fi
fails=0
n=0
ran=0
for c in "${CASES[@]}"; do
	n=$((n + 1))
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$n"; then continue; fi
	IFS='|' read -r spec who op reason <<<"$c"
	spec=$(echo $spec); who=$(echo $who); op=$(echo $op); reason=$(echo "$reason" | sed 's/^ *//; s/ *$//')
	if [ "${reason#!}" != "$reason" ]; then
		reason=${reason#!}
		if [ $PROBE = 1 ]; then echo "skip $n $spec: $who $op (kcmp only)"; continue; fi
	fi
	if [ $PROBE = 1 ]; then
		case $reason in
		*"now two"*) reason="no longer one open file description|the offset is no longer shared" ;;
		*"now one"*) reason="they are one open file description, and were not|the offset is shared, and was not" ;;
		esac
	fi
	name=${spec%%,*}
	args=()
	[ "$spec" != "$name" ] && IFS=, read -r -a args <<<"${spec#*,}"
	ran=$((ran + 1))
	dir=$(mktemp -d /tmp/ckpt-fdfail.XXXXXX)
	out=$dir/out
	(cd "$dir" && exec setsid "$BIN/$name" "$out" "${args[@]}" </dev/null >/dev/null 2>&1) &
	pid=$!
	for _ in $(seq 200); do grep -qx READY "$out" 2>/dev/null && break; sleep 0.05; done
	verdict="no READY"
	if grep -qx READY "$out" 2>/dev/null; then
		t=$(task "$pid" "$who")
		if [ -z "$t" ]; then
			verdict="no task $who"
		else
			# shellcheck disable=SC2086
			if [ $VERBOSE = 1 ]; then tools/fdpoke "$t" $op; else tools/fdpoke "$t" $op 2>/dev/null; fi
			kill -TERM "$pid"
			for _ in $(seq 200); do grep -qE '^(PASS|FAIL)' "$out" && break; sleep 0.05; done
			verdict=$(grep -E '^(PASS|FAIL)' "$out" | tail -1)
		fi
	fi
	kill -KILL -- -"$pid" 2>/dev/null # the subject's process group (setsid): its processes only
	wait "$pid" 2>/dev/null
	if [[ "$verdict" =~ ^FAIL\ .*($reason) ]]; then
		echo "ok   $n $spec: $who $op: $verdict"
	else
		echo "BAD  $n $spec: $who $op: expected FAIL matching /$reason/, got: $verdict"
		fails=$((fails + 1))
	fi
	rm -rf "$dir"
done
echo "$fails of $ran cases did not FAIL as expected"
[ $fails -eq 0 ]
