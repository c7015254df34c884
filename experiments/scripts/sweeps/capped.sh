#!/usr/bin/env bash
# Run a command in its own process group for at most SECONDS, then kill the whole group (Hydra's joblib workers
# included) and pack every record.json under DIR into OUT/records.tgz. Usage: capped.sh SECONDS DIR OUT -- cmd...
set -u
secs=$1 dir=$2 out=$3; shift 4
setsid "$@" &
pid=$!
( sleep "$secs"; kill -TERM -- -"$pid" 2>/dev/null; sleep 5; kill -KILL -- -"$pid" 2>/dev/null ) &
watchdog=$!
wait "$pid"; rc=$?
kill "$watchdog" 2>/dev/null
mkdir -p "$dir"; (cd "$dir" && find . -name record.json | tar czf "$out/records.tgz" -T -)
echo "exit $rc; records: $(cd "$dir" && find . -name record.json | wc -l)"
