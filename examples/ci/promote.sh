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
HARNESS="${HARNESS:-harness}"

candidate="${1:-}"
if [ -z "$candidate" ]; then
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
  candidate="$($HARNESS finetune "$BACKBONE" --task "$TASK" ${TRAIN_ARGS:-} --format json \
                | python3 -c 'import json, sys; print(json.load(sys.stdin)["model"])')"
  echo "trained $candidate" >&2
fi

status=0
# shellcheck disable=SC2086  # GATE_ARGS is a list of flags
$HARNESS gate "$candidate" --against "$TASK:production" ${GATE_ARGS:-} --apply --format json > verdict.json \
  || status=$?
python3 -c 'import json; v = json.load(open("verdict.json")); print(v["summary"])' >&2 || true
if [ "$status" -eq 0 ]; then
  echo "promoted $candidate to $TASK:production (history: $HARNESS registry history $TASK:production)" >&2
fi
exit "$status"
