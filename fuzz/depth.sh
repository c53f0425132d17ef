#!/usr/bin/env bash
# Fuzzes targets to a number of executions each, for depth (CI's 30 s per
# target is a smoke run), and prints how many each got.
#
#   fuzz/depth.sh RUNS [TARGET[:RUNS] ...] [/ TARGET[:RUNS] ...]
#   (default: every target in Cargo.toml)
#
# A target's own `:RUNS` overrides the first argument (to top up a target
# that already has some depth). Targets alternate between the two lanes,
# or, with a `/` among them, those before it run on one lane and those
# after it on the other (to pair a slow target with several fast ones).
# DEPTH_DRY_RUN=1 prints the two lanes' queues and stops.
# Built without a sanitizer (the checks are the oracle; the crate's unsafe is
# the small arch layer, which CI's ASan runs cover), about 2–3x the ASan
# rate. Without compare tracing too: on softmax_diff it took 57% of the
# time (in the scalar backend's loops), and dropping it ran 2.8x the
# executions in the same 60 s (13965 vs 5001); CI's smoke runs keep it for
# coverage guidance. Two lanes, one per core. Corpora in $DEPTH_DIR (default
# /tmp/fuzz-depth), seeded from fuzz/corpus and fuzz/regressions; a finding
# stops its target and lands in $DEPTH_DIR/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:?usage: fuzz/depth.sh RUNS [TARGET ...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*_\(diff\|short\)\)"$/\1/p' Cargo.toml)
fi
dir=${DEPTH_DIR:-/tmp/fuzz-depth}
mkdir -p "$dir"

run_one() {
  local t=${1%%:*} n_runs=$runs
  [ "$t" != "$1" ] && n_runs=${1#*:}
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
  cp -n corpus/"$t"/* "$dir/corpus/$t/" 2>/dev/null || true
  "$bin/$t" "$dir/corpus/$t" "regressions/$t" -runs="$n_runs" -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$t/" >"$dir/$t.log" 2>&1 || true
  local n
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/$t.log")
  local found=""
  ls "$dir/artifacts/$t"/crash-* >/dev/null 2>&1 && found="  FINDING in $dir/artifacts/$t"
  echo "$t ${n:-?} runs$found"
}

# Lane i's targets, one per line.
queue() {
  local i=$1 k=0 side=0 split=0 t
  for t in "${targets[@]}"; do [ "$t" = / ] && split=1; done
  for t in "${targets[@]}"; do
    if [ "$t" = / ]; then side=1; continue; fi
    if { [ $split = 1 ] && [ $side = "$i" ]; } || { [ $split = 0 ] && [ $((k % 2)) = "$i" ]; }; then
      echo "$t"
    fi
    k=$((k + 1))
  done
}

lane() {
  local t
  for t in $(queue "$1"); do run_one "$t"; done
}

if [ -n "${DEPTH_DRY_RUN:-}" ]; then
  echo "lane 0: $(queue 0 | tr '\n' ' ')"
  echo "lane 1: $(queue 1 | tr '\n' ' ')"
  exit 0
fi
cargo +nightly fuzz build -O -a -s none --no-trace-compares --target-dir "$dir/target"
bin="$dir/target/x86_64-unknown-linux-gnu/release"
lane 0 &
lane 1
wait
