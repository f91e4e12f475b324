#!/usr/bin/env bash
# Train (or take) a candidate, gate it against TASK:production, promote it only on a pass.
#
#   examples/ci/promote.sh                      # fine-tune $BACKBONE on $TASK, then gate it
#   examples/ci/promote.sh fashion-mnist@12     # gate a version already in the store
#
# Environment: TASK (default fashion-mnist), BACKBONE (default cifar_convnet_s), TRAIN_ARGS (extra
# finetune flags, e.g. "--epochs 3"), GATE_ARGS (extra gate conditions, e.g. "--max-latency-ms 2"),
# HARNESS (the harness command), HARNESS_HOME (the store: keep it on a persistent volume or restore
# it from an artifact in CI). Exit status: 0 promoted, 1 refused by the gate, 2 usage error; the
# verdict with its evidence is written to verdict.json for the CI job to keep.
set -euo pipefail

TASK="${TASK:-fashion-mnist}"
BACKBONE="${BACKBONE:-cifar_convnet_s}"
here="$(cd "$(dirname "$0")" && pwd)"
# harness on PATH, else the project's own virtualenv (the README's set-up command makes it)
HARNESS="${HARNESS:-$(command -v harness || echo "$here/../../.venv/bin/harness")}"
if ! [ -x "$(command -v "$HARNESS" 2>/dev/null || echo "$HARNESS")" ]; then
  echo "promote.sh: no harness command (tried PATH and $here/../../.venv/bin/harness); set HARNESS" >&2
  exit 2
fi

candidate="${1:-}"
if [ -z "$candidate" ]; then
  trained="$(mktemp)"
  trap 'rm -f "$trained"' EXIT
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
  $HARNESS finetune "$BACKBONE" --task "$TASK" ${TRAIN_ARGS:-} --format json > "$trained" || exit $?
  candidate="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"])' "$trained")"
  echo "trained $candidate" >&2
fi

status=0
# shellcheck disable=SC2086  # GATE_ARGS is a list of flags
$HARNESS gate "$candidate" --against "$TASK:production" ${GATE_ARGS:-} --apply --format json > verdict.json.tmp \
  || status=$?
if [ -s verdict.json.tmp ]; then  # a verdict (pass or fail); a usage error (2) leaves none
  mv verdict.json.tmp verdict.json
  python3 -c 'import json; print(json.load(open("verdict.json"))["summary"])' >&2
else
  rm -f verdict.json.tmp
fi
if [ "$status" -eq 0 ]; then
  echo "promoted $candidate to $TASK:production (history: $HARNESS registry history $TASK:production)" >&2
fi
exit "$status"
