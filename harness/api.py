"""The Python API: what the commands do, as functions with keyword arguments, for notebooks and
scripts (``import harness; harness.select(task="fashion-mnist")``).

Each function takes an optional ``ctx`` (:class:`harness.Context`); without one it opens a context
with the installed plugins, ``$HARNESS_HOME``'s store and ``$HARNESS_DATA``'s data, and closes it
when done. ``task`` is a task name, a view (``fashion-mnist:classes=0-4,per_class=50``) or a task
file; ``data`` is a folder, manifest or ``hf:`` source instead. Results are the same typed records
the commands print (``as_dict()``/``to_dict()`` give their JSON). Errors are :mod:`harness.errors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from harness.context import Context
    from harness.data.preprocess import Preprocess
    from harness.evaluate.report import EvaluationReport
    from harness.onnx.export import ExportResult
    from harness.onnx.parity import ParityReport
    from harness.onnx.report import BenchReport
    from harness.report.collect import ReportData
    from harness.select.row import LeaderboardRow
    from harness.select.run import SelectResult
    from harness.train.finetune import FinetuneResult


@contextlib.contextmanager
def _context(ctx: Context | None, **options: Any) -> Iterator[Context]:
    if ctx is not None:
        yield ctx
        return
    from harness.context import Context

    with Context(**options) as made:
        yield made


def _task(ctx: Context, task: str | None, data: str | None, required: bool = True) -> str | None:
    from harness.data.datatask import resolve
    from harness.data.sources import DataSpec

    return resolve(ctx, task, DataSpec(data) if data else None, required=required)


def select(task: str | None = None, *, data: str | None = None, budget: str = "quick",
           candidates: Sequence[str] | None = None, prescreen: str | None = None, top_k: int | None = None,
           seeds: int = 1, max_latency_ms: float | None = None, max_params: float | None = None,
           max_size_mb: float | None = None, use_cache: bool = True, time_limit: str | float | None = None,
           executor: str = "serial", prefer: str = "best", then: str | None = None, then_epochs: int | None = None,
           ctx: Context | None = None, **recipe: Any) -> SelectResult:
    """Run the selection protocol (``harness select``); ``recipe`` overrides the budget (``epochs=2``).

    The choice is made on validation; ``prefer`` picks among the candidates tied with the best
    (``best``, ``fastest``, ``smallest``). ``then="standard"`` trains the ``top_k`` best (default 2)
    again at that budget and ships the best of those (``result.budget_check`` says if the order held).

    ``time_limit`` (seconds, or ``"10m"``) runs successive halving; ``executor="ray"`` trains the
    candidates as Ray tasks on a local instance (an initialised Ray connection is used as it is).
    """
    from harness.select.config import Constraints, SelectConfig
    from harness.select.halving import parse_duration
    from harness.select.run import select as run

    limit = None if time_limit is None else (parse_duration(time_limit) if isinstance(time_limit, str)
                                             else float(time_limit))
    runner = None
    if executor == "ray":
        from harness.select.ray_executor import RayExecutor

        runner = RayExecutor()
    with _context(ctx) as c:
        config = SelectConfig(task=str(_task(c, task, data)), budget=budget, prescreen=prescreen, top_k=top_k,
                              seeds=seeds, candidates=tuple(candidates) if candidates else None,
                              constraints=Constraints(max_latency_ms, max_params, max_size_mb), use_cache=use_cache,
                              time_limit_s=limit, prefer=prefer, then=then, then_epochs=then_epochs,
                              recipe={k: v for k, v in recipe.items() if v is not None})
        return run(c, config, runner)


def finetune(model: str, task: str | None = None, *, data: str | None = None, budget: str = "quick",
             name: str | None = None, ctx: Context | None = None, **recipe: Any) -> FinetuneResult:
    """Fine-tune ``model`` (backbone[.tag], registry reference or weights file) and register it."""
    from harness.train.finetune import finetune as run
    from harness.train.recipe import recipe_for

    with _context(ctx) as c:
        name_of_task = str(_task(c, task, data))
        return run(c, model, name_of_task, recipe_for(c.catalogue.task(name_of_task), budget, **recipe), name=name)


def evaluate(model: str, task: str | None = None, *, data: str | None = None, tta: bool = False,
             test_limit: int | None = None, ctx: Context | None = None) -> EvaluationReport:
    """Every metric of the task on its test split, per class, and the confusion matrix."""
    from harness.evaluate.model import evaluate_model

    with _context(ctx) as c:
        return evaluate_model(c, model, _task(c, task, data, required=False), tta_flip=tta, test_limit=test_limit)


def export(model: str, out_dir: str | None = None, *, opset: int | None = None,
           ctx: Context | None = None) -> ExportResult:
    """Export ``model`` to ONNX (atomically), recorded with its registry version."""
    from harness.onnx.export import DEFAULT_OPSET, export_model

    with _context(ctx) as c:
        return export_model(c, model, out_dir, opset=opset or DEFAULT_OPSET)


def check_onnx(model_or_onnx: str, task: str | None = None, *, samples: int = 256,
               ctx: Context | None = None) -> ParityReport:
    """ONNX Runtime against PyTorch on the task's test images."""
    from harness.onnx.parity import check_parity

    with _context(ctx) as c:
        return check_parity(c, model_or_onnx, task, samples=samples)


def bench(model: str, *, batch_sizes: Sequence[int] = (1, 32), runtimes: Sequence[str] | None = None,
          rounds: int = 3, ctx: Context | None = None) -> BenchReport:
    """Latency and throughput per runtime and batch size, each runtime in its own process."""
    from harness.onnx.bench import bench as run
    from harness.onnx.report import RUNTIMES

    with _context(ctx) as c:
        return run(c, model, batch_sizes=tuple(batch_sizes), runtimes=tuple(runtimes or RUNTIMES), rounds=rounds)


def leaderboard(task: str | None = None, *, data: str | None = None,
                ctx: Context | None = None) -> list[LeaderboardRow]:
    """The stored leaderboard of a task, best first."""
    from harness.select.leaderboard import rows_from_store

    with _context(ctx) as c:
        return rows_from_store(c, str(_task(c, task, data)))


def report(task: str | None = None, out: str = "report.html", *, data: str | None = None, data_check: bool = True,
           ctx: Context | None = None) -> ReportData:
    """Write the self-contained HTML report of a task's selection to ``out``; returns what it shows."""
    from harness.report import write_report

    with _context(ctx) as c:
        return write_report(c, str(_task(c, task, data)), out, data_check=data_check)


@dataclass
class LoadedModel:
    """A model ready to predict: the module (eval mode), how images must be prepared, class names."""

    module: nn.Module
    preprocess: Preprocess
    class_names: tuple[str, ...]

    def predict(self, images: Any) -> Any:
        """Class probabilities for uint8 images (N, C, H, W) as a torch tensor."""
        import torch

        from harness.data.preprocess import to_model_input

        with torch.no_grad():
            return self.module(to_model_input(torch.as_tensor(images), self.preprocess)).softmax(1)


def load_model(ref: str, *, ctx: Context | None = None) -> LoadedModel:
    """``ref`` (registry reference, backbone[.tag] or weights file) as an ``nn.Module`` with its
    preprocessing, the way evaluation runs it."""
    from harness.data.preprocess import resolve_preprocess
    from harness.models.sources import resolve_model

    with _context(ctx) as c:
        source = resolve_model(c, ref)
        module = source.build().eval()
        pre = resolve_preprocess(source, channels_last=False)  # the model's own size and normalisation
        return LoadedModel(module, pre, tuple(source.class_names or ()))


@dataclass
class LoadedOnnx:
    """An ONNX Runtime session with the preprocessing recorded in the file."""

    session: Any
    preprocess: Preprocess
    class_names: tuple[str, ...]

    def predict(self, images: Any) -> np.ndarray:
        """Logits for uint8 images (N, C, H, W)."""
        import torch

        from harness.data.preprocess import to_model_input

        inputs = to_model_input(torch.as_tensor(images), self.preprocess).numpy()
        return self.session.run(["logits"], {"input": inputs})[0]


def load_onnx(ref_or_path: str, *, ctx: Context | None = None) -> LoadedOnnx:
    """An exported model: a ``.onnx`` file, or a registry reference whose stored export is used
    (exported first when it has none)."""
    from pathlib import Path

    from harness.data.preprocess import Preprocess
    from harness.onnx.runtime import harness_metadata, ort_session

    with _context(ctx) as c:
        if ref_or_path.endswith(".onnx"):
            path = Path(ref_or_path)
        else:
            from harness.onnx.export import export_model

            version = c.store.get(ref_or_path)
            artifact = version.artifacts.get("onnx")
            path = artifact.path if artifact is not None and c.store.blobs.verify(artifact.sha256) else \
                export_model(c, ref_or_path).info.path
        meta = harness_metadata(path)
        pre = Preprocess(input_size=int(meta["input_size"]), channels=int(meta.get("channels", 3)),
                         mean=tuple(meta["mean"]), std=tuple(meta["std"]), channels_last=False)
        return LoadedOnnx(ort_session(path), pre, tuple(meta.get("class_names") or ()))
