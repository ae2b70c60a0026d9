#!/usr/bin/env bash
# The fuzz suite (tests/fuzz) on fresh random inputs, round after round, for MINUTES (default 30); stops at
# the first failure (hypothesis prints the input and how to reproduce it). Prints the inputs tried.
#   bash scripts/fuzz.sh 30
set -uo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
end=$(( $(date +%s) + minutes * 60 ))
count=$(mktemp)
trap 'rm -f "$count"' EXIT
rounds=0
while [ "$(date +%s)" -lt "$end" ]; do
  rounds=$((rounds + 1))
  if ! PLACER_FUZZ_PROFILE=long PLACER_FUZZ_EXAMPLES=${PLACER_FUZZ_EXAMPLES:-2000} PLACER_FUZZ_COUNT_FILE="$count" \
       .venv/bin/python -m pytest tests/fuzz -q -p no:cacheprovider -x; then
    echo "fuzz.sh: a failure in round $rounds (above)" >&2
    exit 1
  fi
done
total=$(awk '{s += $1} END {print s + 0}' "$count")
echo "fuzz.sh: $rounds rounds, $total inputs, no failure in $minutes minutes"
