# Shared by the command-line test scripts (sourced): $out is the script's output folder.
fail() { echo "FAIL: $*"; exit 1; }
# Runs the command, keeps its output in $out/$1.txt, checks the exit status.
expect() {
  local name=$1 want=$2
  shift 2
  "$@" >"$out/$name.txt" 2>&1
  local got=$?
  [ "$got" -eq "$want" ] || { cat "$out/$name.txt"; fail "$name: exit status $got, expected $want"; }
}
