"""One leaderboard row, the single shape ``select`` and ``leaderboard`` both show.

A row is built from the registry versions of one candidate in one selection (one per seed) by
:func:`row_from_versions`, whether the versions were trained a second ago or read from the store
a week later, so both commands always agree on the same store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from registry import keys
from registry.store import ModelVersion

UNITS_NOTE = "gflops: 2 FLOPs per multiply-add, batch 1; latencies: median ms; size: ONNX MB"

# (name in the row's dict, LeaderboardRow attribute); metrics and the primary's interval go between.
HEAD_COLUMNS = ("candidate", "model", "status")
TAIL_COLUMNS = ("ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "ort_b32_img_s", "params_m", "gflops",
                "size_mb", "parity", "exporter", "prescreen", "pareto", "chosen", "seeds", "rung", "train_s", "timing",
                "fingerprint", "excluded", "stage", "reason", "place")
LOWER_IS_BETTER = ("ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "params_m", "gflops", "size_mb")
SORTABLE = ("ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "ort_b32_img_s", "params_m", "gflops",
            "size_mb", "prescreen")


@dataclass(frozen=True)
class LeaderboardRow:
    """A candidate's result: quality (mean over seeds), speed, size, export status and the choice."""

    candidate: str
    primary: str
    status: str = "ok"  # ok | cached | failed | skipped
    model: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    ci95: float | None = None
    seeds: int = 1
    ort_b1_ms: float | None = None
    eager_b1_ms: float | None = None
    ort_b32_ms: float | None = None
    eager_b32_ms: float | None = None
    ort_b32_img_s: float | None = None
    params_m: float | None = None
    gflops: float | None = None
    size_mb: float | None = None
    parity: str | None = None  # passed | FAILED
    exporter: str | None = None
    prescreen: float | None = None
    pareto: bool | None = None
    chosen: bool = False
    rung: str | None = None  # with --time-limit: the successive-halving rung reached, e.g. "2/3 (3 ep)"
    train_s: float | None = None
    timing: str | None = None  # why the latencies should not be trusted, when they should not
    fingerprint: str | None = None
    excluded: str | None = None
    stage: str | None = None  # the stage a failed row failed in
    reason: str | None = None
    place: str | None = None

    @property
    def primary_value(self) -> float | None:
        return self.metrics.get(self.primary)

    def value(self, key: str) -> Any:
        """A column by name: a metric, ``{primary}_ci95`` or an attribute."""
        if key in self.metrics:
            return self.metrics[key]
        if key == f"{self.primary}_ci95":
            return self.ci95
        return getattr(self, key, None)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (same as ``as_dict()``)."""
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON keys (strict JSON: NaN and infinities become null)."""
        data: dict[str, Any] = {"candidate": self.candidate, "model": self.model, "status": self.status}
        for name, value in self.metrics.items():
            data[name] = value if math.isfinite(value) else None
            if name == self.primary and self.seeds > 1:
                data[f"{name}_ci95"] = self.ci95
        for name in TAIL_COLUMNS:
            value = getattr(self, name)
            if name == "seeds" and value == 1:
                continue
            data[name] = value
        return data


def failed_row(candidate: str, primary: str, stage: str, reason: str, prescreen: float | None = None) -> LeaderboardRow:
    return LeaderboardRow(candidate, primary, status="failed", stage=stage, reason=reason, prescreen=prescreen)


def skipped_row(candidate: str, primary: str, reason: str | None, place: str | None) -> LeaderboardRow:
    return LeaderboardRow(candidate, primary, status="skipped", reason=reason, place=place)


def _bench_columns(stored: dict[str, Any] | None) -> dict[str, Any]:
    from harness.onnx.report import BenchReport

    if not stored:
        return {}
    report = BenchReport.from_dict(stored)
    b32 = report.row("onnxruntime", 32)
    return {"eager_b1_ms": report.median("torch", 1), "ort_b1_ms": report.median("onnxruntime", 1),
            "eager_b32_ms": report.median("torch", 32), "ort_b32_ms": report.median("onnxruntime", 32),
            "ort_b32_img_s": b32.images_per_s if b32 else None, "params_m": round(report.params / 1e6, 3),
            "gflops": round(report.flops / 1e9, 4), "size_mb": report.onnx_size_mb,
            "timing": "; ".join(report.timing_problems) or None}


def row_from_versions(candidate: str, versions: Sequence[ModelVersion], primary: str, higher_is_better: bool,
                      status: str = "ok") -> LeaderboardRow:
    """The row of one candidate from its versions (one per seed): the primary metric's mean and
    interval over seeds; everything else from the best seed, which is the version shown."""
    from harness.select.choose import mean_ci

    scored = [v for v in versions if primary in v.metrics.get(keys.TEST, {})]
    if not scored:  # its primary metric failed (raised or NaN): shown, never ranked
        why = next((v.metrics.get(keys.TEST_FAILED, {}).get(primary) for v in versions
                    if primary in v.metrics.get(keys.TEST_FAILED, {})), None)
        return LeaderboardRow(candidate, primary, status="failed", model=versions[0].ref if versions else None,
                              stage="evaluate", reason=why or f"no test {primary}")
    sign = 1 if higher_is_better else -1
    best = max(scored, key=lambda v: sign * v.metrics[keys.TEST][primary])
    mean, half = mean_ci([v.metrics[keys.TEST][primary] for v in scored])
    parity = best.metrics.get(keys.PARITY)
    prescreen = best.metrics.get(keys.PRESCREEN)
    halving = best.metrics.get(keys.HALVING)
    return LeaderboardRow(
        candidate=candidate, primary=primary, status=status, model=best.ref,
        metrics={**best.metrics[keys.TEST], primary: round(mean, 4)}, ci95=round(half, 4) if len(scored) > 1 else None,
        seeds=len(scored), parity=None if parity is None else ("passed" if parity["passed"] else "FAILED"),
        exporter=None if parity is None else parity.get("exporter"),
        prescreen=None if prescreen is None else prescreen["score"], chosen=keys.ALIAS_BEST in best.aliases,
        rung=f"{halving['rung']}/{halving['rungs']} ({halving['epochs']} ep)" if halving else None,
        train_s=best.metrics.get(keys.TRAIN, {}).get("seconds"), fingerprint=best.tags.get(keys.TAG_FINGERPRINT),
        **_bench_columns(best.metrics.get(keys.BENCH)),
    )
