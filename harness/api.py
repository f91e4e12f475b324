"""The Python API: what the commands do, as functions with keyword arguments, for notebooks and
scripts (``import harness; harness.select_models(task="fashion-mnist")``).

At the top level the three functions whose command names are also subpackages' names are
``harness.select_models``, ``harness.evaluate_model`` and ``harness.write_report`` (``harness.select``,
``harness.evaluate`` and ``harness.report`` are the subpackages); here they are also
:func:`select`, :func:`evaluate` and :func:`report`, the same functions.

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

from registry import UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch
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
    from registry import ImageSplit


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


def select_models(task: str | None = None, *, data: str | None = None, budget: str = "quick",
                  candidates: Sequence[str] | str | None = None, prescreen: str | None = None, top_k: int | None = None,
                  seeds: int = 1, max_latency_ms: float | None = None, max_params: float | None = None,
                  max_size_mb: float | None = None, use_cache: bool = True, offline: bool = False,
                  time_limit: str | float | None = None, halving: bool | None = None, executor: str = "serial",
                  prefer: str = "best", then: str | None = None, then_epochs: int | None = None,
                  robustness: bool | None = None, int8: bool = False, int8_max_drop: float | None = None,
                  int8_min_speedup: float | None = None, threads: int | None = None, ignore_data_errors: bool = False,
                  ctx: Context | None = None, **recipe: Any) -> SelectResult:
    """Run the selection protocol (``harness select``); ``recipe`` overrides the budget (``epochs=2``).
    The keywords are the command's flags, turned into a config by the constructor the command uses
    (:meth:`SelectConfig.from_options <harness.select.config.SelectConfig.from_options>`).

    The choice is made on validation; ``prefer`` picks among the candidates tied with the best
    (``best``, ``fastest``, ``smallest``). ``then="standard"`` trains the ``top_k`` best (default 2)
    again at that budget and ships the best of those (``result.budget_check`` says if the order held).

    ``halving``: successive halving to the budget's epochs (None: the budget's default, quick halves
    to 9 epochs with one seed; False: every candidate trained to the end).
    ``time_limit`` (seconds, or ``"10m"``) runs successive halving within it; ``executor="ray"`` trains the
    candidates as Ray tasks on a local instance (an initialised Ray connection is used as it is).
    ``robustness``: the corruption suite on every row (True), on none (False), or where it costs at
    most 10% of the row's training (None). ``int8``: measure whether INT8 pays for each row.
    """
    import dataclasses

    from harness.select.config import SelectConfig
    from harness.select.run import select as run

    config = SelectConfig.from_options(
        "", budget=budget, candidates=candidates, prescreen=prescreen, top_k=top_k, seeds=seeds,
        max_latency_ms=max_latency_ms, max_params=max_params, max_size_mb=max_size_mb, use_cache=use_cache,
        offline=offline, time_limit=time_limit, halving=halving, prefer=prefer, then=then, then_epochs=then_epochs,
        robustness=robustness, int8=int8, int8_max_drop=int8_max_drop, int8_min_speedup=int8_min_speedup,
        threads=threads, ignore_data_errors=ignore_data_errors, recipe=recipe)  # checked before any work
    runner = None
    if executor == "ray":
        from harness.select.ray_executor import RayExecutor

        runner = RayExecutor()
    elif executor != "serial":
        raise UsageError("{param} must be serial or ray", param="executor")
    from harness.context import DataOptions

    offline_data = {"data": DataOptions(download=False)} if offline else {}  # as the command: nor a dataset
    with _context(ctx, **offline_data) as c:
        return run(c, dataclasses.replace(config, task=str(_task(c, task, data))), runner)


def finetune(model: str, task: str | None = None, *, data: str | None = None, budget: str = "quick",
             name: str | None = None, ctx: Context | None = None, **recipe: Any) -> FinetuneResult:
    """Fine-tune ``model`` (backbone[.tag], registry reference or weights file) and register it."""
    from harness.train.finetune import finetune as run
    from harness.train.recipe import recipe_for

    with _context(ctx) as c:
        entry = c.catalogue.task(str(_task(c, task, data)))
        return run(c, model, entry, recipe_for(entry, budget, **recipe), name=name)


def evaluate_model(model: str, task: str | None = None, *, data: str | None = None, tta: bool = False,
                   test_limit: int | None = None, ctx: Context | None = None) -> EvaluationReport:
    """Every metric of the task on its test split, per class, and the confusion matrix."""
    from harness.evaluate.model import evaluate_model as run

    with _context(ctx) as c:
        return run(c, model, _task(c, task, data, required=False), tta_flip=tta, test_limit=test_limit)


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
    """Latency and throughput per runtime and batch size, each runtime in its own process; with the INT8
    runtime, ``report.extra["int8"]`` is the INT8 verdict (offered or why not, with its figures)."""
    from harness.evaluate.int8_check import bench_int8
    from harness.onnx.report import RUNTIMES

    with _context(ctx) as c:
        return bench_int8(c, model, batch_sizes=tuple(batch_sizes), runtimes=tuple(runtimes or RUNTIMES),
                          rounds=rounds)[0]


def leaderboard(task: str | None = None, *, data: str | None = None,
                ctx: Context | None = None) -> list[LeaderboardRow]:
    """The stored leaderboard of a task, best first."""
    from harness.select.leaderboard import rows_from_store

    with _context(ctx) as c:
        return rows_from_store(c, str(_task(c, task, data)))


def write_report(task: str | None = None, out: str = "report.html", *, data: str | None = None,
                 data_check: bool = True, ctx: Context | None = None) -> ReportData:
    """Write the self-contained HTML report of a task's selection to ``out``; returns what it shows."""
    from harness.report import write_report as run
    from registry.files import check_out_path

    check_out_path(out)  # a path that cannot be written is refused before the store and the data are read
    with _context(ctx) as c:
        return run(c, str(_task(c, task, data)), out, data_check=data_check)


def load_images(task: str | None = None, *, data: str | None = None, split: str = "test",
                limit: int | None = None, ctx: Context | None = None) -> ImageSplit:
    """The images of a task's dataset, as harness feeds them: ``.images`` a uint8 tensor (N, C, H, W),
    ``.labels`` int64 (N,), ``.class_names``; ``split`` is one of the dataset's splits (``train``,
    ``test``), ``limit`` keeps the first N. What :meth:`LoadedModel.predict` takes as it is."""
    from harness.data.loading import load_split
    from registry import ImageSplit

    if limit is not None and limit < 1:
        raise UsageError("{param} must be at least 1", param="limit")
    with _context(ctx) as c:
        entry = c.catalogue.task(str(_task(c, task, data)))
        whole = load_split(c, entry.dataset, split)
        return whole if limit is None else ImageSplit(whole.images[:limit], whole.labels[:limit], whole.class_names)


def as_image_batch(images: Any) -> torch.Tensor:
    """``images`` as the uint8 (N, C, H, W) tensor models are fed, or a :class:`UsageError` saying what
    is wrong and how to fix it. Only uint8 is accepted: a float array could be in [0, 1], in [0, 255]
    or already normalised, and guessing wrong predicts garbage without a warning."""
    import numpy as np
    import torch

    accepted = ("pass one numpy array or torch tensor of uint8 pixels shaped (N, C, H, W), e.g. "
                "harness.load_images(...).images")
    if isinstance(images, (list, tuple)):  # images of one size, each (C, H, W): stacked into the batch
        arrays = all(isinstance(i, np.ndarray) for i in images)
        tensors = all(isinstance(i, torch.Tensor) for i in images)
        shapes = {tuple(i.shape) for i in images if isinstance(i, (np.ndarray, torch.Tensor))}
        if not images or not (arrays or tensors) or len(shapes) != 1:
            kinds = sorted({type(i).__name__ for i in images})
            what = ("an empty list" if not images else f"a {type(images).__name__} of {' and '.join(kinds)}"
                    + (f" of {len(shapes)} different shapes" if len(shapes) > 1 else ""))
            raise UsageError(f"images must be an array, got {what}: {accepted}; a list of same-sized "
                             "(C, H, W) arrays or tensors is stacked for you")
        images = np.stack(images) if arrays else torch.stack(list(images))
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise UsageError(f"images must be an array, got {type(images).__name__}: {accepted} (image files: "
                         "numpy.asarray(PIL.Image.open(path)), then arrange the axes)")
    if isinstance(images, np.ndarray):
        images = np.ascontiguousarray(images)  # a flipped or transposed view has strides torch refuses
    batch = torch.as_tensor(images)
    if batch.dtype != torch.uint8:
        hint = (" (floats in [0, 1]: pass (images * 255).round() as uint8)" if batch.is_floating_point() else "")
        raise UsageError(f"images must be uint8 pixels 0-255, got {str(batch.dtype).replace('torch.', '')}{hint}")
    shape = tuple(batch.shape)
    if batch.dim() != 4:
        fix = ("add the channel axis: images[:, None] for a batch of grey images, images[None] for one image"
               if batch.dim() in (2, 3) else "pass a batch shaped (N, C, H, W)")
        raise UsageError(f"images must be shaped (N, C, H, W), got {shape}: {fix}")
    if shape[1] not in (1, 3):
        fix = "; they look channels-last: images.permute(0, 3, 1, 2)" if shape[3] in (1, 3) else ""
        raise UsageError(f"images must be shaped (N, C, H, W) with C = 1 or 3, got {shape}{fix}")
    return batch


@dataclass
class LoadedModel:
    """A model ready to predict: the module (eval mode), how images must be prepared, class names."""

    module: nn.Module
    preprocess: Preprocess
    class_names: tuple[str, ...]

    def predict(self, images: Any) -> np.ndarray:
        """Class probabilities, a float32 array (N, classes), for uint8 images (N, C, H, W) (a numpy
        array or a tensor); resizing, channels and normalisation are the model's own."""
        import torch

        from harness.data.preprocess import to_model_input

        with torch.no_grad():
            inputs = to_model_input(as_image_batch(images), self.preprocess)
            return self.module(inputs).softmax(1).float().cpu().numpy()


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
    temperature: float | None = None  # fitted on validation at export (metadata 'temperature'), if any

    def predict(self, images: Any, *, calibrated: bool = False) -> np.ndarray:
        """Class probabilities, a float32 array (N, classes), for uint8 images (N, C, H, W): the same
        as :meth:`LoadedModel.predict` gives for the model it was exported from. ``calibrated``
        divides the logits by the file's :attr:`temperature` first (probabilities that mean what
        they say; the ranking, and so the predicted class, is unchanged)."""
        import numpy as np

        from harness.data.preprocess import to_model_input

        if calibrated and self.temperature is None:
            raise UsageError("this ONNX file records no temperature; re-export it with 'harness export' after "
                             "'harness select' or 'harness evaluate' fitted one, or predict without calibrated=True")
        inputs = to_model_input(as_image_batch(images), self.preprocess).numpy()
        logits = self.session.run(["logits"], {"input": inputs})[0]
        if calibrated:
            logits = logits / self.temperature
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def load_onnx(ref_or_path: str, *, ctx: Context | None = None) -> LoadedOnnx:
    """An exported model: a ``.onnx`` file, or a registry reference whose stored export is used
    (exported first when it has none)."""
    import tempfile
    from pathlib import Path

    from harness.onnx.runtime import harness_metadata, onnx_preprocess, onnx_temperature, ort_session

    with _context(ctx) as c:
        if ref_or_path.endswith(".onnx"):
            path = Path(ref_or_path)
        else:
            from harness.onnx.export import stored_or_export

            version = c.store.get(ref_or_path)
            artifact = version.artifacts.get("onnx")
            # the stored file in place when intact; else exported (and stored) again, a damaged one said
            path = artifact.path if artifact is not None and c.store.blobs.verify(artifact.sha256) else \
                stored_or_export(c, version, ref_or_path, Path(tempfile.mkdtemp(prefix="harness-onnx-")),
                                 record=True)[0]
        meta = harness_metadata(path)
        return LoadedOnnx(ort_session(path), onnx_preprocess(path, meta), tuple(meta.get("class_names") or ()),
                          onnx_temperature(path, meta))


# The commands' own names, kept in this module: ``from harness.api import select`` (at the top level
# ``harness.select`` is the subpackage, so there the functions are the names above).
select = select_models
evaluate = evaluate_model
report = write_report
