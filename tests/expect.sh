#!/usr/bin/env bash
# Runs a command and passes when it exits with STATUS and its output (stdout and stderr, lines
# joined by spaces) matches the extended regular expression REGEX. CTest's
# PASS_REGULAR_EXPRESSION alone ignores the exit status.
#   expect.sh STATUS REGEX COMMAND [ARGS...]
set -uo pipefail
want=$1 regex=$2
shift 2
out=$("$@" 2>&1)
got=$?
printf '%s\n' "$out"
if [ "$got" -ne "$want" ]; then
  echo "FAIL: exit status $got, expected $want"
  exit 1
fi
if ! printf '%s' "$out" | tr '\n' ' ' | grep -qE -- "$regex"; then
  echo "FAIL: the output does not match: $regex"
  exit 1
fi
