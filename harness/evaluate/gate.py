"""``harness gate``: may CANDIDATE replace REF (usually ``TASK:production``)? A verdict with its evidence.

Code is promoted when its checks pass; a model should be too. The gate compares the two models
*on the same images*, image by image, with the paired bootstrap of the decision issue
(:mod:`harness.evaluate.paired`): the difference of the task's primary metric with its 95%
interval and p-value. Both models are run now on the task's whole **test** split: it is the one
set neither model trained on, whatever recipes and validation draws made them (their validation
images may overlap the other's training images), so it is the only fair common ground. Gate
sparingly: every gate spends a little of the test split's independence (a habit of gating many
candidates against one test set is selection on test).

Conditions (each reported with its value, its limit and why it passed or failed):

- ``min_delta`` (points): the *lower* end of the interval of candidate minus reference must be
  above it. 0 (the default) asks for a candidate shown better beyond the noise: a tie is refused.
  A negative value is a non-inferiority margin (``-0.5``: "not worse by more than half a point",
  to ship a faster model of the same quality).
- parity: the candidate's ONNX export agrees with PyTorch (measured now if never measured).
- ``max_latency_ms`` (ONNX Runtime, batch 1, median; measured now when not stored) and
  ``max_size_mb`` (the ONNX file).
- ``max_robustness_drop`` (a fraction: 0.15 allows 15%): the relative drop of accuracy from clean to
  the mean over the corruption suite (:mod:`harness.evaluate.robustness`, on the ONNX file; measured
  now when not stored). ``max_ece``: the test ECE after temperature scaling, which is what a consumer
  gets who follows the file's ``temperature`` metadata (fitted on validation; a version without stored
  predictions cannot be checked, and fails the condition saying so). The evidence carries both
  ECEs, the temperature, the drop's 95% interval and the accuracy per corruption.

With no holder of the alias (a first promotion) there is nothing to compare: the quality
condition is reported as "first promotion" and the others still apply. ``apply`` moves the alias
only when the gate passes, in one transaction that also records the move and its evidence, and
only if the alias still points where it pointed when the comparison began.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.evaluate.paired import PairedDiff, SeedPair, paired_bootstrap
from harness.predictions.stored import EvalSet, eval_set
from registry import UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context
    from registry.store import ModelVersion


@dataclass(frozen=True)
class GateConfig:
    """What the gate checks: CANDIDATE against REF, and the limits (None: not checked)."""

    candidate: str
    against: str
    min_delta: float = 0.0  # points (x100), on the lower end of the 95% interval
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    require_parity: bool = True
    max_robustness_drop: float | None = None  # relative, a fraction
    max_ece: float | None = None  # test ECE after temperature scaling


@dataclass(frozen=True)
class Condition:
    """One condition of the gate: its name, whether it passed, the value found, the limit, and why."""

    name: str
    passed: bool
    value: Any
    limit: Any
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.name, "passed": self.passed, "value": self.value, "limit": self.limit,
                "reason": self.reason}


@dataclass(frozen=True)
class GateVerdict:
    """The gate's answer and everything it rests on (JSON: :meth:`as_dict`)."""

    candidate: str
    reference: str | None  # None: the alias had no holder (a first promotion)
    alias: str
    task: str
    metric: str
    images: EvalSet
    candidate_score: float
    reference_score: float | None
    diff: PairedDiff | None
    conditions: tuple[Condition, ...]
    applied: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.conditions)

    @property
    def failed(self) -> list[Condition]:
        return [c for c in self.conditions if not c.passed]

    def summary(self) -> str:
        """One line: ``PASS: photos@5 may replace photos:production (photos@3): +1.2 [+0.4, +2.0] points``."""
        verb = "may replace" if self.passed else "may not replace"
        holder = f" ({self.reference})" if self.reference else " (no holder: first promotion)"
        head = f"{'PASS' if self.passed else 'FAIL'}: {self.candidate} {verb} {self.alias}{holder}"
        why = "; ".join(c.reason for c in (self.failed or self.conditions[:1]))
        return f"{head}: {why}"

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": "pass" if self.passed else "fail", "summary": self.summary(),
                "candidate": self.candidate, "reference": self.reference, "alias": self.alias, "task": self.task,
                "metric": self.metric, "images": self.images.as_dict(), "candidate_score": self.candidate_score,
                "reference_score": self.reference_score, "diff": self.diff.as_dict() if self.diff else None,
                "conditions": [c.as_dict() for c in self.conditions], "applied": self.applied,
                "notes": list(self.notes)}


def _alias_target(ctx: Context, against: str) -> tuple[str, str, ModelVersion | None]:
    """(name, alias, holder or None) of ``against`` (NAME:ALIAS)."""
    from registry.store import ALIAS_RE, parse_ref

    name, _, alias = parse_ref(against)
    if alias is None:
        raise UsageError(f"{{param}} {against!r} names no alias; give NAME:ALIAS (e.g. {name}:production), the "
                         "alias the candidate would take", param="against")
    if not ALIAS_RE.match(alias) or alias.isdigit():
        raise UsageError(f"{{param}} {against!r}: bad alias {alias!r}; start with a letter; letters, digits, '_' "
                         "and '-'", param="against")
    holder = ctx.store.get(against) if ctx.store.exists(against) else None
    if holder is None and name not in ctx.store.names():
        raise UsageError(f"{{param}} {against!r}: no model named {name!r} in the store (harness registry list)",
                         param="against")
    return name, alias, holder


def _test_logits(ctx: Context, version: ModelVersion, task_name: str) -> tuple[Any, Any, EvalSet]:
    """The model's logits on the task's whole test split (at its own preprocessing), the labels
    and the image set."""
    from harness.data.preprocess import resolve_preprocess
    from harness.data.splits import load_test_split
    from harness.environment import select_device
    from harness.evaluate.predict import predict
    from harness.models.sources import resolve_model

    source = resolve_model(ctx, version.ref)
    task = ctx.catalogue.task(task_name)
    pre = resolve_preprocess(source, default_size=task.protocol.input_size)
    data = load_test_split(ctx, task, image_size=pre.input_size)
    device = select_device(ctx.device)
    model = source.build(source.output_classes()).to(device)
    logits = predict(model, data.test.images, data.test.labels, pre, device)
    return logits.numpy(), data.test.labels.numpy(), eval_set("test", task.dataset, "test", data.test_ids,
                                                                data.test_size)


def _quality(ctx: Context, config: GateConfig, candidate: ModelVersion, holder: ModelVersion | None,
             task: str) -> tuple[Condition, EvalSet, float, float | None, PairedDiff | None]:
    """The primary metric of both on the same test images and the ``min_delta`` condition."""
    from harness.evaluate.metrics import metric_scorer

    metric = ctx.catalogue.metrics.get(ctx.catalogue.task(task).primary_metric)
    scorer = metric_scorer(metric)
    logits, labels, images = _test_logits(ctx, candidate, task)
    mine = scorer(logits, labels) if scorer else float((logits.argmax(1) == labels).mean())
    if holder is None:
        moves = ctx.store.alias_history(candidate.name, config.against.rpartition(":")[2])
        unset = (f" ({candidate.name}:{moves[-1].alias} was unset by move {moves[-1].id}: "
                 f"{moves[-1].command or 'no command recorded'})" if moves else "")
        return (Condition("quality", True, round(mine, 4), None, f"first promotion{unset}: {metric.name} {mine:.4f} "
                          f"on {images.n:,} test images, nothing to compare with"), images, mine, None, None)
    theirs_logits, theirs_labels, theirs_images = _test_logits(ctx, holder, task)
    if theirs_images != images or not (theirs_labels == labels).all():
        raise UsageError(f"{candidate.ref} and {holder.ref} were not scored on the same test images")
    theirs = scorer(theirs_logits, labels) if scorer else float((theirs_logits.argmax(1) == labels).mean())
    sign = 1 if metric.higher_is_better else -1
    pair = SeedPair(labels, logits, theirs_logits) if sign > 0 else SeedPair(labels, theirs_logits, logits)
    diff = paired_bootstrap([pair], metric.name, scorer)
    low = diff.low * 100
    passed = low > config.min_delta
    better = "better" if sign > 0 else "lower (better)"
    reason = (f"{metric.name} {mine:.4f} vs {theirs:.4f}: {diff.text()} points ({diff.p_text()}, {images.n:,} test "
              f"images); the interval's lower end {low:+.1f} is {'above' if passed else 'not above'} "
              f"--min-delta {config.min_delta:+.1f}" + ("" if passed else _why_not(diff, config.min_delta, better)))
    return Condition("quality", passed, diff.as_dict(), config.min_delta, reason), images, mine, theirs, diff


def _why_not(diff: PairedDiff, margin: float, better: str) -> str:
    """Why a quality condition failed, in words: identical, within the noise, or worse."""
    if diff.low == diff.high == 0.0:
        return " (the two predict alike on every image: a tie)"
    if diff.high * 100 < margin:
        return " (worse than the margin allows, beyond the noise)"
    return f" ({better} by less than the margin, or not beyond the noise)"


def _onnx_file(ctx: Context, ref: str, workdir: Path) -> Path:
    from harness.onnx.export import export_model

    return export_model(ctx, ref, workdir).info.path


def _deployment(ctx: Context, config: GateConfig, candidate: ModelVersion, task: str) -> list[Condition]:
    """Parity, latency and size of the candidate's ONNX export (measured now where never measured)."""
    from harness.onnx.bench import bench
    from harness.onnx.parity import check_parity
    from harness.onnx.report import BenchReport

    out: list[Condition] = []
    metrics = candidate.metrics
    with tempfile.TemporaryDirectory(prefix="harness-gate-") as tmp:
        onnx: Path | None = None
        if config.require_parity:
            parity = metrics.get(keys.PARITY)
            if parity is None:
                onnx = _onnx_file(ctx, candidate.ref, Path(tmp))
                parity = check_parity(ctx, candidate.ref, task, onnx_file=onnx).as_dict()
            passed = bool(parity.get("passed"))
            out.append(Condition("parity", passed, "passed" if passed else "failed", "passed",
                                 "ONNX Runtime agrees with PyTorch" if passed else
                                 "ONNX Runtime disagrees with PyTorch (harness check-onnx shows where)"))
        if config.max_latency_ms is None and config.max_size_mb is None:
            return out
        stored = metrics.get(keys.BENCH)
        report = BenchReport.from_dict(stored) if stored else None
        if report is None or report.median("onnxruntime", 1) is None:
            onnx = onnx or _onnx_file(ctx, candidate.ref, Path(tmp))
            report = bench(ctx, candidate.ref, batch_sizes=(1,), runtimes=("onnxruntime",), onnx_file=onnx)
    if config.max_latency_ms is not None:
        ms = report.median("onnxruntime", 1)
        ok = ms is not None and ms <= config.max_latency_ms
        out.append(Condition("latency", ok, ms, config.max_latency_ms,
                             f"ONNX Runtime batch-1 median {ms:.2f} ms {'<=' if ok else '>'} "
                             f"--max-latency-ms {config.max_latency_ms:g}" if ms is not None else "no latency"))
    if config.max_size_mb is not None:
        mb = report.onnx_size_mb
        ok = mb is not None and mb <= config.max_size_mb
        out.append(Condition("size", ok, mb, config.max_size_mb,
                             f"ONNX file {mb:.2f} MB {'<=' if ok else '>'} --max-size-mb {config.max_size_mb:g}"
                             if mb is not None else "no ONNX size"))
    return out


def _robustness(ctx: Context, limit: float, candidate: ModelVersion, task: str) -> Condition:
    """The relative drop over the corruption suite (the stored result, else measured now and recorded)."""
    from harness.evaluate.robustness import DEFAULT_SAMPLES, RobustnessReport, measure_robustness, stored_report

    report = stored_report(candidate, DEFAULT_SAMPLES)
    if report is None:
        measured = measure_robustness(ctx, candidate.ref, task)
        assert isinstance(measured, RobustnessReport)
        report = measured
    drop = report.relative_drop
    ok = drop is not None and drop <= limit
    low, high = report.drop_ci95 or (math.nan, math.nan)
    evidence = {"relative_drop": None if drop is None else round(drop, 4), "drop_ci95": report.as_dict()["drop_ci95"],
                "clean_accuracy": round(report.clean_accuracy, 4),
                "corruption_accuracy": round(report.corruption_accuracy, 4), "images": report.images.as_dict(),
                "per_corruption": {r["corruption"]: r["mean"] for r in report.table()}, "suite": report.suite}
    worst = min(report.table(), key=lambda r: r["mean"])
    reason = (f"accuracy {report.clean_accuracy:.4f} clean, {report.corruption_accuracy:.4f} over "
              f"{len(report.scores)} corrupted sets: relative drop {drop:.1%} [{low:.1%}, {high:.1%}] "
              f"{'<=' if ok else '>'} --max-robustness-drop {limit:g} (worst: {worst['corruption']} "
              f"{worst['mean']:.4f}; {report.images.n:,} test images)" if drop is not None else
              "clean accuracy is 0: no relative drop")
    return Condition("robustness", ok, evidence, limit, reason)


def _calibration(ctx: Context, limit: float, candidate: ModelVersion) -> Condition:
    """Test ECE after the temperature fitted on validation (stored; fitted now from stored predictions)."""
    from harness.predictions.calibration import ensure_calibration

    found = ensure_calibration(ctx, candidate)
    if found is None:
        return Condition("calibration", False, None, limit, f"{candidate.ref} has no stored validation and test "
                         "predictions to fit a temperature on; fine-tune it with harness to measure calibration")
    ok = found.ece_after <= limit
    reason = (f"test ECE {found.ece_after:.4f} after temperature {found.temperature:.3g} (raw logits "
              f"{found.ece_before:.4f}) {'<=' if ok else '>'} --max-ece {limit:g}")
    return Condition("calibration", ok, {"ece_scaled": found.ece_after, **found.as_dict()}, limit, reason)


def _off_clean(ctx: Context, config: GateConfig, candidate: ModelVersion, task: str) -> list[Condition]:
    """The robustness and calibration conditions that were asked for."""
    out = []
    if config.max_robustness_drop is not None:
        out.append(_robustness(ctx, config.max_robustness_drop, candidate, task))
    if config.max_ece is not None:
        out.append(_calibration(ctx, config.max_ece, candidate))
    return out


def gate(ctx: Context, config: GateConfig, *, apply: bool = False, command: str | None = None) -> GateVerdict:
    """Check ``config`` (see the module docstring); with ``apply`` a passing candidate takes the alias."""
    for name, value in (("max_latency_ms", config.max_latency_ms), ("max_size_mb", config.max_size_mb)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError("{param} must be a positive number", param=name)
    for name, value in (("max_robustness_drop", config.max_robustness_drop), ("max_ece", config.max_ece)):
        if value is not None and not (0 <= value <= 1):
            raise UsageError("{param} must be a fraction between 0 and 1 (0.15 for 15%)", param=name)
    if not math.isfinite(config.min_delta):
        raise UsageError("{param} must be a number of points (e.g. 0, 0.5 or -0.5)", param="min_delta")
    if apply:
        ctx.store.require_writable()  # moving the alias is a write: refuse before the evaluation
    candidate = ctx.store.get(config.candidate)
    name, alias, holder = _alias_target(ctx, config.against)
    if candidate.name != name:
        raise UsageError(f"{candidate.ref} cannot take {name}:{alias}: aliases belong to one registry name; "
                         f"compare against {candidate.name}:{alias}")
    task = candidate.task
    if not task:
        raise UsageError(f"{candidate.ref} was not trained for a task; fine-tune it on one first")
    ctx.catalogue.task(task)  # an unknown (e.g. removed) task: one line, before any work
    if holder is not None and holder.task != task:
        raise UsageError(f"{holder.ref} is a model for task {holder.task!r}, {candidate.ref} for {task!r}")
    if holder is not None and holder.ref == candidate.ref:
        raise UsageError(f"{candidate.ref} already is {name}:{alias}")
    quality, images, mine, theirs, diff = _quality(ctx, config, candidate, holder, task)
    conditions = (quality, *_deployment(ctx, config, candidate, task), *_off_clean(ctx, config, candidate, task))
    verdict = GateVerdict(candidate.ref, holder.ref if holder else None, f"{name}:{alias}", task,
                          ctx.catalogue.task(task).primary_metric, images, mine, theirs, diff, conditions)
    if apply and verdict.passed:
        ctx.store.set_alias(candidate.ref, alias, evidence=verdict.as_dict(), command=command,
                            expect=holder.ref if holder else "")
        verdict = GateVerdict(**{**verdict.__dict__, "applied": True})
    return verdict
