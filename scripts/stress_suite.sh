#!/usr/bin/env bash
# The whole test suite N times in a row (default 10) in random order, with two CPU-burning processes beside it:
# what shows a test that leans on the machine's speed or on test order. It runs from a fresh clone of HEAD in a
# temporary folder, so edits in this checkout cannot leak into the runs, and stops at the first failure with
# the failing run's tail. Needs pytest-randomly, which is not a dev dependency on purpose (installed, it would
# shuffle every plain `pytest` run):
#
#   pip install pytest-randomly && bash scripts/stress_suite.sh [runs]
#
# PYTHON picks the interpreter (default: the checkout's .venv); the burners are stopped by process id.
set -u
runs=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
git clone -q "$here" "$work/repo"
"$python" -c 'while True: pass' & burner1=$!
"$python" -c 'while True: pass' & burner2=$!
trap 'kill $burner1 $burner2 2>/dev/null; rm -rf "$work"' EXIT
cd "$work/repo" || exit 1
export HF_HUB_OFFLINE=1 PYTHONPATH="$work/repo"
echo "commit $(git rev-parse --short HEAD), $runs runs, burners $burner1 $burner2"
for i in $(seq 1 "$runs"); do
  seed=$((RANDOM * 7 + i))
  echo "== run $i, seed $seed, $(date +%T)"
  if ! "$python" -m pytest -q -p randomly --randomly-seed="$seed" -p no:cacheprovider > "$work/run.log" 2>&1; then
    tail -40 "$work/run.log"
    echo "run $i failed (seed $seed)"
    exit 1
  fi
  tail -1 "$work/run.log"
done
