"""Which prescreen to trust: each method's ranking against fine-tuned truth over a model zoo.

Builds the default zoo (``harness zoo build``: 12 pretrained models) unless it is there, then for
each target task runs ``select`` over the zoo plus the same 4 backbones from scratch (16
candidates, quick budget, one seed: the fine-tuned truth), and then ``select --prescreen M`` for
every method M (its rows come from the cache, so only the prescreen runs). For each target it
prints Kendall tau and weighted tau (scipy.stats.weightedtau, top-weighted) of every method and of
the two free baselines (parameter count; pretraining score = source validation accuracy, 0 for
scratch, not defined for autoencoders, so it covers 12 of 16 candidates), and the prescreen's cost
in seconds and as a fraction of the candidates' summed training time (select's wall time adds
export, parity and the latency benchmark to that: 69-73 s for these 16 candidates on 2 cores).

    HARNESS_HOME=$(mktemp -d) python benchmarks/prescreen.py [--targets "T1;T2"] [--json]

Needs real Fashion-MNIST (Debian package dataset-fashion-mnist, or HARNESS_DATA with the files).
Measured here: see the figures in the README's "Prescreen" section and the issue notes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

SCRATCH = ("cifar_convnet_xs", "cifar_resnet8", "cifar_convnet_s", "cifar_resnet20")
TARGETS = ("fashion-mnist:classes=5-9,per_class=50", "fashion-mnist:per_class=20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=";".join(TARGETS), help="tasks or views, separated by ;")
    parser.add_argument("--zoo", default="default", help="zoo name; the default spec is built when missing")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args()

    import harness
    from harness.context import Context
    from harness.select.config import PRESCREENS
    from harness.train import zoo

    table = []
    with Context() as ctx:
        began = time.perf_counter()
        zoo.build(ctx, zoo.read_spec(None))
        print(f"zoo {args.zoo}: {len(zoo.members(ctx, args.zoo))} models ready in "
              f"{time.perf_counter() - began:.0f}s", file=sys.stderr)
        candidates = [f"zoo:{args.zoo}", *SCRATCH]
        for target in args.targets.split(";"):
            began = time.perf_counter()
            truth = harness.select(task=target, candidates=candidates, ctx=ctx)
            train_s = sum(r.train_s or 0.0 for r in truth.rows)
            print(f"{target}: {len(truth.rows)} candidates fine-tuned in {time.perf_counter() - began:.0f}s "
                  f"(train time summed {train_s:.0f}s)", file=sys.stderr)
            for method in PRESCREENS:
                result = harness.select(task=target, candidates=candidates, prescreen=method, ctx=ctx)
                check = result.rank_check
                assert check is not None
                seconds = result.stage_seconds["(setup)"].get("prescreen", 0.0)
                table.append({"target": target, "order": method, "n": check.prescreen.n,
                              "kendall": check.prescreen.kendall, "weighted": check.prescreen.weighted,
                              "weighted_p": check.prescreen.weighted_p, "null95": check.prescreen.null95,
                              "regret": check.prescreen.regret,
                              "seconds": round(seconds, 1), "cost_fraction": round(seconds / train_s, 3)})
                for base, same in check.baselines:
                    table.append({"target": target, "order": f"{base.order} (vs {method} on same)", "n": base.n,
                                  "kendall": base.kendall, "weighted": base.weighted, "weighted_p": base.weighted_p,
                                  "null95": base.null95, "regret": base.regret,
                                  "prescreen_weighted_same": same.weighted})
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print("w-tau p: permutation p-value of weighted tau; null95: what random orders reach one time in 20; "
          "regret: truth of the best minus truth of the order's first pick")
    print(f"{'target':40} {'order':18} {'n':>3} {'tau':>6} {'w-tau':>6} {'p':>6} {'null95':>6} {'regret':>6} "
          f"{'cost':>14}  prescreens' w-tau on the same")
    for target in dict.fromkeys(row["target"] for row in table):
        rows = [r for r in table if r["target"] == target]
        for row in rows:
            if "seconds" in row:
                cost = f"{row['seconds']}s {row['cost_fraction']:.0%}"
                print(f"{target:40} {row['order']:18} {row['n']:>3} {_f(row['kendall']):>6} "
                      f"{_f(row['weighted']):>6} {_f(row['weighted_p'], 3):>6} {_f(row['null95']):>6} "
                      f"{_f(row['regret'], 3):>6} {cost:>14}")
        for name in dict.fromkeys(r["order"].split(" (vs")[0] for r in rows if "seconds" not in r):
            mine = [r for r in rows if r["order"].startswith(name + " (vs")]
            same = ", ".join(f"{r['order'].split('vs ')[1].split(' ')[0]} {_f(r['prescreen_weighted_same'])}"
                             for r in mine)
            print(f"{target:40} {name:18} {mine[0]['n']:>3} {_f(mine[0]['kendall']):>6} "
                  f"{_f(mine[0]['weighted']):>6} {_f(mine[0]['weighted_p'], 3):>6} {_f(mine[0]['null95']):>6} "
                  f"{_f(mine[0]['regret'], 3):>6} {'free':>14}  {same}")


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
