"""One leaderboard row, the single shape ``select`` and ``leaderboard`` both show.

A row is built from the registry versions of one candidate in one selection (one per seed) by
:func:`row_from_versions`, whether the versions were trained a second ago or read from the store
a week later, so both commands always agree on the same store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry import keys
from registry.store import ModelVersion

if TYPE_CHECKING:  # numpy stays out of light commands (harness --help imports this module)
    from harness.evaluate.int8 import Int8Verdict
    from harness.evaluate.paired import PairedDiff

UNITS_NOTE = "gflops: 2 FLOPs per multiply-add, batch 1; latencies: median ms; size: ONNX MB"

# (name in the row's dict, LeaderboardRow attribute); metrics and the primary's interval go between.
HEAD_COLUMNS = ("candidate", "model", "status")
VAL_COLUMNS = ("val", "val_ci95", "vs_best", "vs_best_low", "vs_best_high", "vs_best_p", "tied")
"""Validation (what the choice is made on) and the paired comparison with the best row, before the test metrics."""
TAIL_COLUMNS: tuple[str, ...] = ("test_vs_chosen", "test_vs_chosen_low", "test_vs_chosen_high", "test_vs_chosen_p",
                "val_set", "test_set", "corruption_acc", "robust_drop", "ece_scaled", "temperature",
                "robustness_note", "ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "ort_b32_img_s",
                "params_m", "gflops",
                "size_mb", "parity", "exporter", "prescreen", "prescreen_method", "pareto", "chosen", "seeds", "budget",
                "rung", "train_s",
                "timing",
                "fingerprint", "excluded", "stage", "reason", "place")
INT8_COLUMNS = ("int8", "int8_offered", "int8_speedup_b1", "int8_speedup_b32", "int8_drop_pts", "int8_drop_on",
                "int8_size_ratio", "int8_ops")
"""``select --int8``: whether the INT8 file is offered, with its figures (:meth:`Int8Verdict.columns`)."""
TAIL_COLUMNS = TAIL_COLUMNS + INT8_COLUMNS
LOWER_IS_BETTER = ("ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "params_m", "gflops", "size_mb",
                   "robust_drop", "ece_scaled")
SORTABLE = ("val", "ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "ort_b32_img_s", "params_m", "gflops",
            "size_mb", "prescreen", "corruption_acc", "robust_drop", "ece_scaled")


@dataclass(frozen=True)
class LeaderboardRow:
    """A candidate's result: quality on validation (what the choice uses) and test (what is reported),
    both means over seeds; the paired comparison with the best row; speed, size, export status, the choice.

    ``metrics`` are the test scores; ``val`` the primary metric on validation. ``vs_best`` is this row
    minus the best row on validation (paired, see :mod:`harness.evaluate.paired`); ``tied`` says its
    interval includes 0. ``test_vs_chosen`` is this row minus the chosen one on test, for the report."""

    candidate: str
    primary: str
    status: str = "ok"  # ok | cached | failed | skipped
    model: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    ci95: float | None = None
    seeds: int = 1
    val: float | None = None
    val_ci95: float | None = None
    vs_best: PairedDiff | None = None
    tied: bool | None = None
    uncompared: bool = False  # eligible, but no per-image predictions on the best row's images to pair with
    test_vs_chosen: PairedDiff | None = None
    val_set: str | None = None   # EvalSet.text() of the best seed's validation images
    test_set: str | None = None  # EvalSet.text() of its test images
    corruption_acc: float | None = None  # mean accuracy over the corruption suite (harness.evaluate.robustness)
    robust_drop: float | None = None  # (clean - corruption_acc) / clean, on the suite's images
    ece_scaled: float | None = None  # test ECE after temperature scaling fitted on validation (``ece``: before)
    temperature: float | None = None  # that temperature (also in the ONNX file's metadata)
    robustness_note: str | None = None  # why the suite did not run for this row, and how to run it
    refs: tuple[str, ...] = field(default=(), compare=False)  # every seed's version, the best first
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
    prescreen_method: str | None = None  # which transferability score ``prescreen`` is
    pareto: bool | None = None
    chosen: bool = False
    budget: str | None = None  # the budget the shown version was trained at (a board after --then mixes them)
    rung: str | None = None  # with --time-limit: the successive-halving rung reached, e.g. "2/3 (3 ep)"
    train_s: float | None = None
    timing: str | None = None  # why the latencies should not be trusted, when they should not
    fingerprint: str | None = None
    excluded: str | None = None
    stage: str | None = None  # the stage a failed row failed in
    reason: str | None = None
    place: str | None = None
    int8: Int8Verdict | None = None  # select --int8 / harness bench: is INT8 faster and accurate enough here

    @property
    def primary_value(self) -> float | None:
        return self.metrics.get(self.primary)

    def value(self, key: str) -> Any:
        """A column by name: a metric, ``{primary}_ci95`` or an attribute."""
        if key in self.metrics:
            return self.metrics[key]
        if key == f"{self.primary}_ci95":
            return self.ci95
        value = getattr(self, key, None)
        return getattr(value, "diff", value)  # a PairedDiff sorts by its difference

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (same as ``as_dict()``)."""
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON keys (strict JSON: NaN and infinities become null)."""
        data: dict[str, Any] = {"candidate": self.candidate, "model": self.model, "status": self.status}
        data["val"] = self.val
        if self.seeds > 1:
            data["val_ci95"] = self.val_ci95
        data.update(_diff_columns("vs_best", self.vs_best))
        data["tied"] = self.tied
        if self.uncompared:
            data["compared"] = False
        for name, value in self.metrics.items():
            data[name] = value if math.isfinite(value) else None
            if name == self.primary and self.seeds > 1:
                data[f"{name}_ci95"] = self.ci95
        data.update(_diff_columns("test_vs_chosen", self.test_vs_chosen))
        for name in TAIL_COLUMNS:
            if name.startswith("test_vs_chosen") or name in INT8_COLUMNS:
                continue
            value = getattr(self, name)
            if name == "seeds" and value == 1:
                continue
            data[name] = value
        if self.int8 is not None:
            data.update(self.int8.columns())
        return data


def eval_set_lines(rows: Sequence[LeaderboardRow]) -> list[str]:
    """Which images the rows' scores were computed on; says so when rows used different sets.
    Printed under select's and leaderboard's tables and in the report."""
    lines = []
    for name, what in (("val_set", "chosen on"), ("test_set", "reported on")):
        sets = sorted({getattr(r, name) for r in rows if getattr(r, name)})
        if len(sets) == 1:
            lines.append(f"{what} {sets[0]}")
        elif sets:
            lines.append(f"{what} {len(sets)} different image sets (rows are not comparable image for image): "
                         + "; ".join(sets))
    return lines


def _diff_columns(prefix: str, diff: PairedDiff | None) -> dict[str, Any]:
    """A paired difference as flat columns (CSV and tables need scalars): value, interval, p-value."""
    if diff is None:
        return {prefix: None, f"{prefix}_low": None, f"{prefix}_high": None, f"{prefix}_p": None}
    return {prefix: diff.diff, f"{prefix}_low": diff.low, f"{prefix}_high": diff.high, f"{prefix}_p": diff.p_value}


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


def _robustness_columns(version: ModelVersion) -> dict[str, Any]:
    """Corruption accuracy and relative drop (or why they are missing), ECE after temperature scaling."""
    from harness.evaluate.robustness import stored_report
    from harness.predictions.calibration import stored_calibration

    out: dict[str, Any] = {}
    report = stored_report(version)
    if report is not None:
        drop = report.relative_drop
        out.update(corruption_acc=round(report.corruption_accuracy, 4),
                   robust_drop=None if drop is None else round(drop, 4))
    elif (version.metrics.get(keys.ROBUSTNESS) or {}).get("skipped"):
        out["robustness_note"] = "robustness skipped: " + version.metrics[keys.ROBUSTNESS]["skipped"]
    calibration = stored_calibration(version)
    if calibration is not None:
        out.update(ece_scaled=calibration.ece_after, temperature=calibration.temperature)
    return out


def _int8_verdict(version: ModelVersion) -> Int8Verdict | None:
    """The INT8 verdict recorded with the version (select --int8, export --int8 or bench), if any."""
    from harness.evaluate.int8 import Int8Verdict

    stored = version.metrics.get(keys.INT8)
    try:
        return Int8Verdict.from_dict(stored) if stored else None
    except (KeyError, TypeError, ValueError):  # written by another harness version: shown as not measured
        return None


def val_score(version: ModelVersion, primary: str) -> float | None:
    """The version's primary metric on validation (None when it has none, or it is not finite)."""
    value = version.metrics.get(keys.VAL, {}).get(primary)
    return float(value) if value is not None and math.isfinite(value) else None


def _set_texts(version: ModelVersion) -> tuple[str | None, str | None]:
    """The validation and test image sets of a version, as text (None for versions made before they were kept)."""
    from harness.predictions.stored import stored_sets

    sets = stored_sets(version)
    return tuple(sets[name].text() if name in sets else None for name in ("val", "test"))  # type: ignore[return-value]


def row_from_versions(candidate: str, versions: Sequence[ModelVersion], primary: str, higher_is_better: bool,
                      status: str = "ok") -> LeaderboardRow:
    """The row of one candidate from its versions (one per seed): the primary metric's mean and
    interval over seeds on validation and on test; everything else from the best seed *on
    validation* (test never picks anything), which is the version shown."""
    from harness.select.choose import mean_ci

    scored = [v for v in versions if primary in v.metrics.get(keys.TEST, {})]
    if not scored:  # its primary metric failed (raised or NaN): shown, never ranked
        why = next((v.metrics.get(keys.TEST_FAILED, {}).get(primary) for v in versions
                    if primary in v.metrics.get(keys.TEST_FAILED, {})), None)
        return LeaderboardRow(candidate, primary, status="failed", model=versions[0].ref if versions else None,
                              stage="evaluate", reason=why or f"no test {primary}")
    sign = 1 if higher_is_better else -1

    def by_val(v: ModelVersion) -> float:
        value = val_score(v, primary)
        return sign * value if value is not None else -math.inf

    best = max(scored, key=by_val)
    mean, half = mean_ci([v.metrics[keys.TEST][primary] for v in scored])
    vals = [x for v in scored if (x := val_score(v, primary)) is not None]
    val_mean, val_half = mean_ci(vals) if vals else (None, None)
    ordered = [best, *(v for v in scored if v is not best)]
    val_set, test_set = _set_texts(best)
    parity = best.metrics.get(keys.PARITY)
    prescreen = best.metrics.get(keys.PRESCREEN)
    halving = best.metrics.get(keys.HALVING)
    return LeaderboardRow(
        candidate=candidate, primary=primary, status=status, model=best.ref,
        metrics={**best.metrics[keys.TEST], primary: round(mean, 4)}, ci95=round(half, 4) if len(scored) > 1 else None,
        seeds=len(scored), val=None if val_mean is None else round(val_mean, 4),
        val_ci95=round(val_half, 4) if val_half is not None and len(vals) > 1 else None,
        val_set=val_set, test_set=test_set,
        refs=tuple(v.ref for v in ordered),
        parity=None if parity is None else ("passed" if parity["passed"] else "FAILED"),
        exporter=None if parity is None else parity.get("exporter"),
        prescreen=None if prescreen is None else prescreen["score"],
        prescreen_method=None if prescreen is None else prescreen.get("method"),
        chosen=keys.ALIAS_BEST in best.aliases,
        rung=f"{halving['rung']}/{halving['rungs']} ({halving['epochs']} ep)" if halving else None,
        budget=best.recipe.get("budget"),
        train_s=best.metrics.get(keys.TRAIN, {}).get("seconds"), fingerprint=best.tags.get(keys.TAG_FINGERPRINT),
        **_bench_columns(best.metrics.get(keys.BENCH)), **_robustness_columns(best), int8=_int8_verdict(best),
    )
