"""How a model holds up off the clean test images: the corruption suite of
:mod:`harness.evaluate.corruptions` (8 corruptions x 5 severities, after ImageNet-C) run on the
model's exported **ONNX** file through ONNX Runtime, since that is what ships.

The suite uses a seeded subset of the task's test split (``DEFAULT_SAMPLES`` images; each cell
alone is then +-4 points, the mean over the 40 cells much less, and the record carries its 95%
interval from a bootstrap over the images); each cell is the accuracy on one corruption at one
severity, the headline is the mean over all cells (*corruption accuracy*, ImageNet-C's mCA without
its AlexNet normalisation, which has no meaning off ImageNet) and the *relative drop*
``(clean - corrupted) / clean`` on the same images.
Images are corrupted as the dataset stores them (what a consumer hands the file before its
preprocessing), then preprocessed from the file's own metadata, as ``check-onnx`` does.

Cost: 41 passes over the subset, plus building the corrupted copies, which is done once per image
set and kept for the next model (a selection's candidates share it). :func:`measure_robustness`
with ``within_s`` first times the clean pass and skips the rest when 40 more passes would take
longer than that (select's rule: 10% of the candidate's training time, see ``AUTO_SHARE``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.evaluate.corruptions import CORRUPTIONS, SEVERITIES, check_names, corrupt
from harness.predictions.stored import EvalSet, eval_set
from registry import UsageError, keys

if TYPE_CHECKING:
    from harness.context import Context
    from harness.data.preprocess import Preprocess

DEFAULT_SAMPLES = 500
SUITE = "cifar10-c-params/v1"
"""Names the corruption parameters and protocol; a stored result of another suite is measured again."""
AUTO_SHARE = 0.10
"""select runs the suite by default when it is estimated to cost at most this share of the
candidate's training time (measured: see the README's figures for the main job)."""
BATCH = 250


@dataclass(frozen=True)
class CorruptionScore:
    """Accuracy on one corruption at one severity."""

    corruption: str
    severity: int
    accuracy: float


@dataclass(frozen=True)
class RobustnessReport:
    """The suite's result on one model: clean accuracy on the subset, every cell, and the summary."""

    model: str
    task: str
    images: EvalSet
    clean_accuracy: float
    scores: tuple[CorruptionScore, ...]
    seed: int
    onnx: str  # which file ran: the registry artifact, a new export, a given path
    seconds: float
    suite: str = SUITE
    corruption_ci95: tuple[float, float] | None = None  # bootstrap over the images
    drop_ci95: tuple[float, float] | None = None

    @property
    def corruption_accuracy(self) -> float:
        """Mean accuracy over every (corruption, severity) cell."""
        return float(np.mean([s.accuracy for s in self.scores]))

    @property
    def relative_drop(self) -> float | None:
        """``(clean - corrupted) / clean``: the share of the clean accuracy lost (None at clean 0)."""
        if self.clean_accuracy <= 0:
            return None
        return (self.clean_accuracy - self.corruption_accuracy) / self.clean_accuracy

    def by_corruption(self) -> dict[str, list[float]]:
        """Accuracy per severity (1..5) for each corruption, in the suite's order."""
        out: dict[str, list[float]] = {}
        for s in sorted(self.scores, key=lambda s: (list(CORRUPTIONS).index(s.corruption), s.severity)):
            out.setdefault(s.corruption, []).append(s.accuracy)
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per corruption: severities 1..5 and their mean (the report's and CLI's table)."""
        return [{"corruption": name, **{f"s{i}": round(a, 4) for i, a in enumerate(accs, 1)},
                 "mean": round(float(np.mean(accs)), 4)} for name, accs in self.by_corruption().items()]

    def summary(self) -> str:
        drop = self.relative_drop
        low, high = self.drop_ci95 or (None, None)
        interval = f" [{low:.1%}, {high:.1%}]" if low is not None and high is not None else ""
        return (f"{self.model}: clean {self.clean_accuracy:.4f}, corrupted {self.corruption_accuracy:.4f} (mean of "
                f"{len(self.scores)} corruption x severity sets), relative drop "
                f"{'-' if drop is None else f'{drop:.1%}'}{interval} on {self.images.text()}")

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "task": self.task, "suite": self.suite, "images": self.images.as_dict(),
                "clean_accuracy": round(self.clean_accuracy, 4),
                "corruption_accuracy": round(self.corruption_accuracy, 4),
                "relative_drop": None if self.relative_drop is None else round(self.relative_drop, 4),
                "corruption_ci95": _rounded(self.corruption_ci95), "drop_ci95": _rounded(self.drop_ci95),
                "seed": self.seed, "onnx": self.onnx, "seconds": round(self.seconds, 2),
                "scores": [{"corruption": s.corruption, "severity": s.severity, "accuracy": round(s.accuracy, 4)}
                           for s in self.scores]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        return cls(data["model"], data["task"], EvalSet.from_dict(data["images"]), data["clean_accuracy"],
                   tuple(CorruptionScore(s["corruption"], s["severity"], s["accuracy"]) for s in data["scores"]),
                   data["seed"], data["onnx"], data["seconds"], data["suite"],
                   _pair(data.get("corruption_ci95")), _pair(data.get("drop_ci95")))


def _rounded(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else [round(pair[0], 4), round(pair[1], 4)]


def _pair(value: Any) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def bootstrap_intervals(clean: np.ndarray, corrupted: np.ndarray, seed: int = 0, resamples: int = 1000
                        ) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """95% percentile intervals of the mean corrupted accuracy and of the relative drop, resampling
    images (``clean``: N booleans; ``corrupted``: cells x N booleans, so the correlation between
    an image's cells is kept)."""
    rng = np.random.default_rng(seed)
    per_image = corrupted.mean(axis=0)
    picks = rng.integers(0, len(clean), size=(resamples, len(clean)))
    means, cleans = per_image[picks].mean(axis=1), clean[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    drops = np.divide(cleans - means, cleans, out=np.full_like(means, np.nan), where=cleans > 0)
    drop = None if np.isnan(drops).any() else tuple(float(x) for x in np.percentile(drops, [2.5, 97.5]))
    return (float(low), float(high)), drop  # type: ignore[return-value]


@dataclass(frozen=True)
class RobustnessSkipped:
    """The suite was not run (select's default rule found it too costly for this model), and how to run it."""

    reason: str
    estimate_s: float

    def as_dict(self) -> dict[str, Any]:
        return {"skipped": self.reason, "estimate_s": round(self.estimate_s, 1)}


def stored_report(version: Any, samples: int | None = None) -> RobustnessReport | None:
    """The version's stored result of the current suite (None when never measured, skipped, of an
    older suite, or, given ``samples``, measured on another number of images)."""
    data = version.metrics.get(keys.ROBUSTNESS) or {}
    if data.get("suite") != SUITE or "scores" not in data:
        return None
    report = RobustnessReport.from_dict(data)
    if samples is not None and report.images.n != min(samples, report.images.of):
        return None
    return report


_SUITE_CACHE: dict[tuple[Any, ...], list[tuple[str, int, np.ndarray]]] = {}
"""The corrupted copies of the last image set (one entry): the next model on the same images reuses them."""
CACHE_BYTES = 256 * 2**20
"""Corrupted copies are kept for the next model only up to this size (40 x 500 Fashion-MNIST images: 16 MB,
CIFAR: 61 MB); larger suites (224 px images) are made one set at a time and dropped."""


def corrupted_sets(images: np.ndarray, names: tuple[str, ...], seed: int, key: tuple[Any, ...]
                   ) -> Iterator[tuple[str, int, np.ndarray]]:
    """Every (corruption, severity, corrupted images) of ``names``, made once per ``key`` when small."""
    full = (*key, names, seed, images.shape)
    if full in _SUITE_CACHE:
        yield from _SUITE_CACHE[full]
        return
    keep = images.nbytes * len(names) * len(SEVERITIES) <= CACHE_BYTES
    made = []
    for name in names:
        for severity in SEVERITIES:
            cell = (name, severity, corrupt(images, name, severity, seed))
            if keep:
                made.append(cell)
            yield cell
    if keep:
        _SUITE_CACHE.clear()
        _SUITE_CACHE[full] = made


def _predict(session: Any, images: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Top-1 predictions of the ONNX session on uint8 NCHW ``images``, preprocessed by ``pre``."""
    import torch

    from harness.data.preprocess import to_model_input

    out = []
    for start in range(0, len(images), BATCH):
        batch = to_model_input(torch.from_numpy(images[start:start + BATCH]), pre).numpy()
        out.append(session.run(["logits"], {"input": batch})[0].argmax(1))
    return np.concatenate(out)


def check_options(samples: int, corruptions: tuple[str, ...] | None) -> tuple[str, ...]:
    """Refuse bad options before any work; the corruptions to run."""
    if samples < 1:
        raise UsageError("{param} must be at least 1", param="samples")
    return check_names(corruptions) if corruptions is not None else tuple(CORRUPTIONS)


def measure_robustness(ctx: Context, ref: str, task_name: str | None = None, *, samples: int = DEFAULT_SAMPLES,
                       seed: int = 0, corruptions: tuple[str, ...] | None = None,
                       onnx_file: str | Path | None = None, threads: int | None = None, record: bool = True,
                       within_s: float | None = None) -> RobustnessReport | RobustnessSkipped:
    """Run the suite on registry version ``ref``'s ONNX file (``onnx_file``, else its stored artifact,
    else a fresh export) over ``samples`` seeded test images of its task; recorded with the version
    unless ``record`` is False. With ``within_s``, skip (and record the skip) when the clean pass
    says the corrupted passes would take longer."""
    from harness.onnx.export import stored_or_export

    names = check_options(samples, corruptions)
    version = ctx.store.get(ref)
    if record:
        ctx.store.require_writable()  # the result is recorded with the version: refuse before the work
    name = task_name or version.task
    if not name:
        raise UsageError(f"pass {{param}}: {version.ref} does not say which task it was trained for", param="task_name")
    task = ctx.catalogue.task(name)
    with tempfile.TemporaryDirectory(prefix="harness-robust-") as tmp:
        if onnx_file:
            path, label = Path(onnx_file), str(onnx_file)
        else:
            path, label = stored_or_export(ctx, version, ref, Path(tmp), record=record)
        result = _run(ctx, version.ref, task, path, label, samples=samples, seed=seed, names=names,
                      threads=threads, within_s=within_s)
    if record:
        stored = result.as_dict() if isinstance(result, RobustnessReport) else {"suite": SUITE, **result.as_dict()}
        ctx.store.update_metrics(version.ref, {keys.ROBUSTNESS: stored})
    return result


def _run(ctx: Context, ref: str, task: Any, path: Path, label: str, *, samples: int, seed: int,
         names: tuple[str, ...], threads: int | None, within_s: float | None
         ) -> RobustnessReport | RobustnessSkipped:
    from harness.data.splits import load_test_split
    from harness.onnx.runtime import onnx_preprocess, ort_session

    started = time.perf_counter()
    pre = onnx_preprocess(path)
    data = load_test_split(ctx, task, image_size=pre.input_size, limit=samples, seed=seed)
    images, labels = data.test.images.numpy(), data.test.labels.numpy()
    evalset = eval_set("robustness", task.dataset, "test", data.test_ids, data.test_size)
    session = ort_session(path, threads=threads)
    begin = time.perf_counter()
    clean = _predict(session, images, pre) == labels
    estimate = (time.perf_counter() - begin) * len(names) * len(SEVERITIES)
    if within_s is not None and estimate > within_s:
        return RobustnessSkipped(f"~{estimate:.0f} s for {len(names) * len(SEVERITIES)} corrupted passes over "
                                 f"{len(labels):,} images is more than {within_s:.{1 if within_s >= 0.1 else 3}f} s "
                                 f"({AUTO_SHARE:.0%} of its training); --robustness runs it", estimate)
    ctx.progress.info(f"{ref}: {len(names)} corruptions x {len(SEVERITIES)} severities on {len(labels):,} test "
                      "images (ONNX Runtime)")
    cells = [(name, severity, _predict(session, bad, pre) == labels)
             for name, severity, bad in corrupted_sets(images, names, seed, (evalset.digest,))]
    right = np.stack([hits for _, _, hits in cells])
    scores = tuple(CorruptionScore(name, severity, float(hits.mean())) for name, severity, hits in cells)
    corruption_ci, drop_ci = bootstrap_intervals(clean, right, seed)
    return RobustnessReport(ref, task.name, evalset, float(clean.mean()), scores, seed, label,
                            time.perf_counter() - started, SUITE, corruption_ci, drop_ci)
