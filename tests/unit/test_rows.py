"""One leaderboard row for select and leaderboard: built from the same stored versions, they agree."""

from __future__ import annotations

import pytest

from harness.select.leaderboard import latest_groups, rows_from_store
from harness.select.row import row_from_versions
from registry import keys

BENCH = {"params": 1_000_000, "flops": 2_000_000, "threads": 2, "input": [3, 8, 8], "rounds": 1, "iters": 1,
         "rows": [{"runtime": rt, "batch": b, "median_ms": ms, "p90_ms": ms, "images_per_s": b / ms * 1e3,
                   "peak_rss_mb": 100.0} for rt, b, ms in (("torch", 1, 2.0), ("onnxruntime", 1, 1.0),
                                                           ("torch", 32, 20.0), ("onnxruntime", 32, 10.0))],
         "onnx_size_mb": 4.0}


def _register(ctx, tmp_path, candidate: str, acc: float, group: str, seed: int, best: bool = False):
    weights = tmp_path / f"{candidate}-{seed}-{acc}.bin"
    weights.write_bytes(f"{candidate}{seed}{acc}".encode())
    metrics = {keys.TEST: {"accuracy": acc, "macro_f1": acc - 0.1}, keys.VAL: {"accuracy": acc},
               keys.TRAIN: {"seconds": 1.5},
               keys.PARITY: {"passed": True, "exporter": "dynamo"}, keys.BENCH: BENCH}
    return ctx.store.register("synthetic", backbone="cifar_convnet_s", kind="finetune", task="synthetic",
                              files={keys.ROLE_WEIGHTS: weights}, metrics=metrics, seed=seed,
                              alias=keys.ALIAS_BEST if best else None,
                              tags={keys.TAG_SELECT: "1", keys.TAG_CANDIDATE: candidate,
                                    keys.TAG_SELECT_GROUP: group, keys.TAG_FINGERPRINT: f"fp{seed}"})


def test_seeds_give_mean_and_interval_and_both_commands_agree(ctx, tmp_path):
    _register(ctx, tmp_path, "net", 0.50, "0001-old", 0)  # an older selection of the same candidate
    a = _register(ctx, tmp_path, "net", 0.80, "0002-new", 0)
    b = _register(ctx, tmp_path, "net", 0.84, "0002-new", 1, best=True)
    from_select = row_from_versions("net", [a, ctx.store.get(b.ref)], "accuracy", True)
    [from_board] = rows_from_store(ctx, "synthetic")
    # the board also says whether the row is tied with the best (select adds that when it decides)
    assert from_board.as_dict() | {"pareto": None, "tied": None} == from_select.as_dict() | {"pareto": None}
    assert from_board.model == b.ref and from_board.chosen and from_board.seeds == 2
    assert from_board.primary_value == pytest.approx(0.82) and from_board.ci95 > 0
    assert from_board.metrics["macro_f1"] == pytest.approx(0.74)  # the best seed's other metrics
    assert (from_board.ort_b1_ms, from_board.eager_b32_ms, from_board.params_m) == (1.0, 20.0, 1.0)


def test_latest_group_wins_per_candidate_and_old_stores_still_read(ctx, tmp_path):
    old = _register(ctx, tmp_path, "x", 0.9, "0001", 0)
    new = _register(ctx, tmp_path, "x", 0.7, "0003", 0)
    other = _register(ctx, tmp_path, "y", 0.6, "0002", 0)
    ctx.store.set_tags(other.ref, {keys.TAG_SELECT_GROUP: None})  # written before groups existed
    groups = latest_groups(ctx.store.list())
    assert [v.ref for v in groups["x"]] == [new.ref] and [v.ref for v in groups["y"]] == [other.ref]
    assert old.ref not in {v.ref for vs in groups.values() for v in vs}
