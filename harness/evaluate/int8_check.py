"""Measure whether INT8 pays: quantize an FP32 ONNX file, score both files on the same validation
and test images, time both in interleaved rounds (:func:`harness.onnx.bench.bench`), and decide
(:func:`harness.evaluate.int8.decide`).

The images are the model's own: for a registry version the splits are drawn again with its
recipe's seed, validation fraction and limits (and checked against the image sets it recorded), so
calibration uses training images that were never validation or test, and "validation" means the
images the model was chosen on. ``harness bench`` (:func:`bench_int8`), ``harness export --int8``
(:func:`export_int8`) and ``select --int8`` (:func:`check_int8`) all come here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.evaluate.int8 import AccuracyCheck, Int8Policy, Int8Verdict, SpeedCheck, decide
from harness.onnx.quantize import CALIBRATION_IMAGES, Quantized, onnx_logits, quantize_int8
from registry import Task, UsageError, keys

if TYPE_CHECKING:
    import numpy as np

    from harness.context import Context
    from harness.data.preprocess import Preprocess
    from harness.models.sources import ModelSource
    from harness.onnx.report import BenchReport

INT8_SAMPLES = 2000
"""Validation and test images (each, seeded subsets) the accuracy drop is measured on: a paired
difference of two near-identical models on 2,000 images has an interval of a few tenths of a point."""
INT8_BATCHES = (1, 32)
"""Batch sizes INT8 must be faster at: one image, and the benchmark's batch."""
CALIBRATION_SEED = 8


@dataclass(frozen=True)
class EvalImages:
    """Preprocessed images of one split, their labels, and which images they are."""

    split: str
    inputs: np.ndarray
    labels: np.ndarray
    text: str


@dataclass(frozen=True)
class Scored:
    """An INT8 file and both files' accuracy on the same images."""

    quantized: Quantized
    accuracy: tuple[AccuracyCheck, ...]


def int8_task(ctx: Context, source: ModelSource, task_name: str | None) -> Task:
    """The task whose training images calibrate INT8 (the model's own unless given); checked up front."""
    name = task_name or (source.version.task if source.version else None)
    if not name:
        raise UsageError(f"INT8 is calibrated on a task's training images and {source.label} is not a registry "
                         "version of one: pass {param}", param="task_name")
    return ctx.catalogue.task(name)


def _split_settings(source: ModelSource) -> dict[str, Any]:
    """How the model's data was split (its recipe; ``load_task_data``'s defaults for a model trained elsewhere)."""
    recipe = source.version.recipe if source.version else {}
    return {k: recipe[k] for k in ("train_limit", "test_limit", "val_fraction", "seed", "val_limit") if k in recipe}


def _subset(ctx: Context, split: str, images: Any, labels: Any, ids: Any, of: int, dataset: str,
            pre: Preprocess, samples: int | None, source: ModelSource) -> EvalImages:
    from harness.data.cache import take
    from harness.data.preprocess import to_model_input
    from harness.data.splits import sample_index
    from harness.predictions.stored import eval_set, stored_sets

    recorded = stored_sets(source.version).get(split) if source.version else None
    if recorded is not None and eval_set(split, dataset, recorded.split, ids, of).digest != recorded.digest:
        ctx.progress.warn(f"INT8: the {split} images drawn now differ from those {source.label} recorded "
                          f"({recorded.text()}); its accuracy drop is measured on the ones drawn now")
    index = sample_index(len(labels), samples, CALIBRATION_SEED)
    where = "train" if split == "val" else "test"
    text = eval_set(split, dataset, where, ids[index], of).text()
    return EvalImages(split, to_model_input(take(images, index), pre).numpy(), labels[index].numpy(), text)


def int8_images(ctx: Context, task: Task, source: ModelSource, pre: Preprocess,
                samples: int | None = INT8_SAMPLES) -> tuple[np.ndarray, tuple[EvalImages, ...]]:
    """(calibration inputs: a seeded sample of training images outside validation, the evaluation
    images: validation (when the model has any) and test, ``samples`` of each)."""
    from harness.data.cache import take
    from harness.data.preprocess import to_model_input
    from harness.data.splits import load_task_data, sample_index

    settings = _split_settings(source)
    data = load_task_data(ctx, task, image_size=pre.input_size, **settings)
    cal = to_model_input(take(data.train.images, sample_index(len(data.train), CALIBRATION_IMAGES,
                                                                CALIBRATION_SEED)), pre).numpy()
    splits = []
    if data.val is not None:
        splits.append(_subset(ctx, "val", data.val.images, data.val.labels, data.val_ids, data.train_size,
                              data.dataset, pre, samples, source))
    splits.append(_subset(ctx, "test", data.test.images, data.test.labels, data.test_ids, data.test_size,
                          data.dataset, pre, samples, source))
    return cal, tuple(splits)


def accuracy_checks(fp32: Path, int8: Path, images: tuple[EvalImages, ...], threads: int | None
                    ) -> tuple[AccuracyCheck, ...]:
    """Both files' top-1 accuracy on each split, with the paired difference INT8 - FP32."""
    from harness.evaluate.paired import SeedPair, paired_bootstrap

    checks = []
    for split in images:
        a, b = onnx_logits(int8, split.inputs, threads), onnx_logits(fp32, split.inputs, threads)
        diff = paired_bootstrap([SeedPair(split.labels, a, b)])
        checks.append(AccuracyCheck(split.split, round(float((b.argmax(1) == split.labels).mean()), 4),
                                    round(float((a.argmax(1) == split.labels).mean()), 4), diff, split.text))
    return tuple(checks)


def quantize_and_score(ctx: Context, source: ModelSource, pre: Preprocess, fp32: Path, out: Path, task: Task, *,
                       samples: int | None = INT8_SAMPLES, threads: int | None = None) -> Scored:
    """Quantize ``fp32`` into ``out`` (calibrated on the task's training images) and score both."""
    calibration, images = int8_images(ctx, task, source, pre, samples)
    quantized = quantize_int8(fp32, out, calibration, warn=ctx.progress.warn)
    return Scored(quantized, accuracy_checks(fp32, out, images, threads))


def speed_checks(report: BenchReport) -> tuple[SpeedCheck, ...]:
    """FP32 (``onnxruntime``) against ``onnxruntime-int8`` per batch size, from the same interleaved rounds."""
    checks = []
    for b in sorted({r.batch for r in report.rows}):
        fp32, int8 = report.row("onnxruntime", b), report.row("onnxruntime-int8", b)
        if fp32 is None or int8 is None:
            continue
        rounds = tuple(round(f / i, 3) for f, i in zip(fp32.round_medians_ms, int8.round_medians_ms, strict=True))
        checks.append(SpeedCheck(b, fp32.median_ms, int8.median_ms, rounds))
    return tuple(checks)


def verdict(scored: Scored, fp32: Path, report: BenchReport, policy: Int8Policy) -> Int8Verdict:
    """The decision on these figures, with the evidence."""
    speed = speed_checks(report)
    offered, reason, split = decide(speed, scored.accuracy, policy)
    q = scored.quantized
    return Int8Verdict(offered, reason, split, q.ops, q.per_channel, q.calibration_images,
                       round(fp32.stat().st_size / 1e6, 3), round(q.path.stat().st_size / 1e6, 3), speed,
                       scored.accuracy, policy, report.threads, "; ".join(report.timing_problems) or None,
                       q.preprocess_error)


def check_int8(ctx: Context, model_ref: str, fp32: Path, out: Path, *, task_name: str | None = None,
               policy: Int8Policy | None = None, threads: int | None = None, samples: int | None = INT8_SAMPLES,
               rounds: int | None = None, batches: tuple[int, ...] = INT8_BATCHES) -> Int8Verdict:
    """Quantize MODEL's FP32 ONNX file ``fp32`` into ``out``, score both and time both at ``batches`` in
    ``rounds`` (default: the policy's least) interleaved rounds; the verdict."""
    from harness.data.preprocess import resolve_preprocess
    from harness.environment import use_threads
    from harness.models.sources import resolve_model
    from harness.onnx.bench import bench

    policy = policy or Int8Policy()
    source = resolve_model(ctx, model_ref)
    task = int8_task(ctx, source, task_name)
    pre = resolve_preprocess(source, None, channels_last=False)
    threads = threads or use_threads()
    ctx.progress.info(f"{source.label}: INT8 quantize and score")
    scored = quantize_and_score(ctx, source, pre, fp32, out, task, samples=samples, threads=threads)
    ctx.progress.info(f"{source.label}: INT8 vs FP32 timing")
    report = bench(ctx, model_ref, batch_sizes=batches, runtimes=("onnxruntime", "onnxruntime-int8"), threads=threads,
                   rounds=rounds or policy.min_rounds, record=False, onnx_file=fp32, int8_file=out)
    return verdict(scored, fp32, report, policy)


def bench_int8(ctx: Context, model_ref: str, *, batch_sizes: tuple[int, ...] = (1, 32),
               runtimes: tuple[str, ...] | None = None, threads: int | None = None, rounds: int = 3, iters: int = 10,
               task_name: str | None = None, samples: int | None = INT8_SAMPLES, record: bool = True,
               input_size: int | None = None,
               policy: Int8Policy | None = None) -> tuple[BenchReport, Int8Verdict | None]:
    """``harness bench``: every runtime timed together; with ``onnxruntime-int8``, the INT8 file is made
    and scored first and the report comes with its verdict (recorded with MODEL's version)."""
    import tempfile

    from harness.data.preprocess import resolve_preprocess
    from harness.environment import use_threads
    from harness.models.sources import resolve_model
    from harness.onnx.bench import bench
    from harness.onnx.export import export_model
    from harness.onnx.report import RUNTIMES, Int8Accuracy

    source = resolve_model(ctx, model_ref) if runtimes is None or "onnxruntime-int8" in runtimes else None
    if runtimes is None:  # the default: INT8 where the model has a task to calibrate on, else said and skipped
        runtimes = RUNTIMES
        if source is not None and not (task_name or (source.version.task if source.version else None)):
            ctx.progress.warn(f"INT8 not measured: {source.label} has no task whose training images could "
                              "calibrate it; pass --task to measure it")
            runtimes = tuple(r for r in RUNTIMES if r != "onnxruntime-int8")
    options: dict[str, Any] = {"batch_sizes": batch_sizes, "runtimes": runtimes, "rounds": rounds, "iters": iters,
               "record": record, "input_size": input_size}
    if source is None or "onnxruntime-int8" not in runtimes:
        return bench(ctx, model_ref, threads=threads, **options), None
    if record and source.version is not None:
        ctx.store.require_writable()  # the verdict is recorded with the version: refuse before quantising
    task = int8_task(ctx, source, task_name)  # before any work
    pre = resolve_preprocess(source, input_size, channels_last=False)
    threads = threads or use_threads()
    with tempfile.TemporaryDirectory(prefix="harness-bench-int8-") as tmp:
        fp32 = export_model(ctx, model_ref, tmp, register=record, input_size=input_size).info.path
        scored = quantize_and_score(ctx, source, pre, fp32, Path(tmp) / "int8.onnx", task, samples=samples,
                                    threads=threads)
        report = bench(ctx, model_ref, threads=threads, onnx_file=fp32, int8_file=scored.quantized.path, **options)
        test = next(a for a in scored.accuracy if a.split == "test")
        report = dataclasses.replace(report, accuracy=Int8Accuracy(test.fp32, test.int8, test.diff.n_images))
        found = verdict(scored, fp32, report, policy or Int8Policy())
    report = dataclasses.replace(report, extra={**report.extra, "int8": found.as_dict()})  # in its JSON too
    if record and source.version is not None and input_size is None:
        stored = {k: v for k, v in report.stored().items() if k != "int8"}  # kept once, under its own key
        ctx.store.update_metrics(source.version.ref, {keys.BENCH: stored, keys.INT8: found.as_dict()})
    return report, found


@dataclass(frozen=True)
class Int8Export:
    """What ``export --int8`` did: the verdict, the INT8 file written (None when it did not pay and
    was not forced) and whether it was written against the verdict."""

    verdict: Int8Verdict
    path: Path | None
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"int8": self.verdict.summary(), "int8_offered": self.verdict.offered,
                "int8_path": str(self.path) if self.path else None, "int8_forced": self.forced,
                "int8_verdict": self.verdict.as_dict()}


def export_int8(ctx: Context, model_ref: str, fp32: Path, *, force: bool = False, task_name: str | None = None,
                policy: Int8Policy | None = None, threads: int | None = None,
                samples: int | None = INT8_SAMPLES) -> Int8Export:
    """Write ``<fp32 stem>.int8.onnx`` beside ``fp32`` only when INT8 pays here (or ``force``), atomically;
    record the verdict (and the file) with MODEL's registry version."""
    import shutil
    import tempfile

    from harness.models.sources import resolve_model
    from registry.files import TMP_PREFIX, atomic_write_bytes

    out = fp32.with_name(fp32.stem + ".int8.onnx")
    staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}int8-", dir=fp32.parent))
    try:
        found = check_int8(ctx, model_ref, fp32, staging / out.name, task_name=task_name, policy=policy,
                           threads=threads, samples=samples)
        written = found.offered or force
        if written:
            atomic_write_bytes(out, (staging / out.name).read_bytes())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    version = resolve_model(ctx, model_ref).version
    if version is not None:
        ctx.store.update_metrics(version.ref, {keys.INT8: found.as_dict()})
        if written:
            ctx.store.add_artifact(version.ref, keys.ROLE_ONNX_INT8, out, {
                "offered": found.offered, "forced": not found.offered, "ops": found.quantised_text()})
    if not written and out.exists():
        ctx.progress.warn(f"{out} is left from an earlier export; this export did not write it")
    return Int8Export(found, out if written else None, written and not found.offered)
