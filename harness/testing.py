"""The conformance kit: checks a plugin's backbones, datasets, metrics and tasks the way harness uses them.

For plugin authors, in their own tests::

    from harness import load_plugins
    from harness.testing import assert_conforms, check_plugin

    def test_my_plugin_conforms(tmp_path):
        assert_conforms(check_plugin(load_plugins(), "harness_tiny", data_dir=tmp_path))

or one entry at a time (``check_backbone``, ``check_dataset``, ``check_metric``, ``check_task``).
From the command line: ``harness plugins check harness_tiny``. Every check returns
:class:`CheckResult` records instead of raising, so one broken entry does not hide the others; a
check that crashes is a failed result naming the exception.

What is checked, and why (each is a mistake that would otherwise surface later, in a user's run):

- backbone: builds with a new head of 7 classes; a forward pass at its smallest usable input gives
  ``(2, 7)``; the gradient reaches the head named by ``head``; ``feature_dim`` is the head's input;
  eval mode is deterministic; the model exports to ONNX and ONNX Runtime agrees with PyTorch.
- dataset: each split loads into uint8 ``(N, C, H, W)`` images with ``C`` as declared and int64
  labels inside the classes, class names match ``num_classes``, loading twice gives the same data,
  the splits hold different images (a loader that ignores ``split`` fails), and an empty data folder
  raises :class:`registry.DataError` (the clean error users see), never another exception (loading
  anyway is fine: generated data, a system-wide copy). Without a data folder a dataset is skipped
  (``CheckResult.skipped``), which no summary counts as passed.
- metric: a quality metric returns a finite float, ranks perfect predictions at least as well as
  wrong ones (in its declared direction) and is deterministic; an efficiency metric returns a
  finite, non-negative float for a small model.
- task: its dataset and metrics exist, the primary metric is a quality metric, and every
  candidate (protocol's and each budget's) names a backbone, a tag or a wildcard that matches one
  (unknown augmentation names are refused when the Task is made).
"""

from __future__ import annotations

import math
import tempfile
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import DataError, HarnessError

if TYPE_CHECKING:
    from harness.plugins import Plugins
    from registry import Catalogue, PluginInfo

NUM_CLASSES = 7


@dataclass(frozen=True)
class CheckResult:
    """One check of one entry: passed or not, and why not."""

    kind: str
    name: str
    check: str
    ok: bool
    detail: str = ""
    plugin: str | None = None
    skipped: bool = False  # not run (a dataset without a data folder): neither passed nor failed

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.ok else "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, **asdict(self)}

    def __str__(self) -> str:
        where = f" [{self.plugin}]" if self.plugin else ""
        said = {"passed": "ok", "skipped": f"skipped ({self.detail})", "failed": f"FAILED {self.detail}"}
        return f"{self.kind} {self.name}{where}: {self.check}: {said[self.status]}"


def summary(results: Sequence[CheckResult]) -> str:
    """``11 of 11 checks passed, 1 skipped``: a skipped check is not counted as passed."""
    ran = [r for r in results if not r.skipped]
    skipped = len(results) - len(ran)
    return (f"{sum(r.ok for r in ran)} of {len(ran)} checks passed"
            + (f", {skipped} skipped" if skipped else ""))


class ConformanceError(AssertionError):
    """Raised by :func:`assert_conforms`; the message lists every failed check."""


def assert_conforms(results: Iterable[CheckResult]) -> list[CheckResult]:
    """Raise :class:`ConformanceError` listing the failures (for pytest); return the results."""
    results = list(results)
    if not results:
        raise ConformanceError("no checks ran: is the plugin loaded and does it register entries?")
    failed = [r for r in results if not r.ok]
    ran = [r for r in results if not r.skipped]
    if failed:
        raise ConformanceError(f"{len(failed)} of {len(ran)} checks failed:\n" + "\n".join(map(str, failed)))
    if not ran:
        raise ConformanceError("every check was skipped: " + "; ".join(map(str, results)))
    return results


class _Checker:
    """Runs named checks of one entry, turning an AssertionError or any crash into a failed result."""

    def __init__(self, kind: str, name: str, plugin: Any) -> None:
        self.kind, self.name, self.plugin = kind, name, str(plugin.name) if plugin else None
        self.results: list[CheckResult] = []

    def run(self, check: str, fn: Callable[[], str | None]) -> bool:
        try:
            detail = fn() or ""
            ok = True
        except AssertionError as exc:
            ok, detail = False, str(exc) or "assertion failed"
        except HarnessError as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # the point of the kit: report any crash as this check's failure
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            ok, detail = False, f"{type(exc).__name__}: {exc} (at {Path(frame.filename).name}:{frame.lineno})"
        self.results.append(CheckResult(self.kind, self.name, check, ok, detail, self.plugin))
        return ok


# -- backbones ---------------------------------------------------------------------------------


def check_backbone(catalogue: Catalogue, name: str, *, export: bool = True) -> list[CheckResult]:
    """Build ``name`` with a new head, run it forward and backward, and export it (see module doc)."""
    import torch

    from harness.models.build import build_model, get_submodule, head_in_features

    entry = catalogue.backbones.get(name)
    c = _Checker("backbone", name, entry.plugin)
    size = entry.input_size if entry.fixed_input_size else max(entry.min_input_size, 32)
    state: dict[str, Any] = {}

    def build() -> str:
        torch.manual_seed(0)
        state["model"] = build_model(catalogue, name, num_classes=NUM_CLASSES)
        return f"input {entry.channels}x{size}x{size}"

    def forward() -> None:
        model = state["model"].train()
        out = model(torch.randn(2, entry.channels, size, size))
        assert tuple(out.shape) == (2, NUM_CLASSES), f"output shape {tuple(out.shape)}, expected (2, {NUM_CLASSES})"
        torch.nn.functional.cross_entropy(out, torch.tensor([0, NUM_CLASSES - 1])).backward()

    def head() -> None:
        module = get_submodule(state["model"], entry.head)
        grad = getattr(getattr(module, "weight", None), "grad", None)
        assert grad is not None and float(grad.abs().sum()) > 0, \
            f"no gradient reaches the head {entry.head!r}: is it the module that produces the logits?"
        if entry.feature_dim is not None:
            got = head_in_features(module)
            assert got == entry.feature_dim, f"feature_dim is {entry.feature_dim}, the head takes {got} features"

    def deterministic() -> None:
        model = state["model"].eval()
        x = torch.randn(2, entry.channels, size, size)
        with torch.no_grad():
            assert torch.equal(model(x), model(x)), "two eval-mode passes on the same input differ"

    def onnx() -> str:
        from harness.onnx.export import export_onnx
        from harness.onnx.runtime import ort_session

        model = state["model"].eval()
        with tempfile.TemporaryDirectory(prefix="harness-kit-") as tmp:
            info = export_onnx(model, Path(tmp) / "model.onnx", input_size=size, channels=entry.channels)
            x = torch.randn(1, entry.channels, size, size)
            with torch.no_grad():
                expected = model(x).numpy()
            got = ort_session(info.path).run(["logits"], {"input": x.numpy()})[0]
            diff = float(abs(got - expected).max())
            assert diff <= 1e-3 + 1e-3 * float(abs(expected).max()), f"ONNX Runtime differs by {diff:.2e}"
            return f"{info.exporter} exporter, max difference {diff:.1e}"

    if c.run("build", build):
        forward_ok = c.run("forward and backward", forward)
        if forward_ok:
            c.run("head and feature_dim", head)
        c.run("deterministic in eval mode", deterministic)
        if export and forward_ok:
            c.run("ONNX export and parity", onnx)
    return c.results


# -- datasets ----------------------------------------------------------------------------------


def check_dataset(catalogue: Catalogue, name: str, data_dir: str | Path, *,
                  splits: Sequence[str] | None = None, image_size: int = 32) -> list[CheckResult]:
    """Load each split of ``name`` from ``data_dir`` (files in the dataset's real layout) and check
    it; also check that an empty folder gives :class:`registry.DataError`."""
    import torch

    entry = catalogue.datasets.get(name)
    c = _Checker("dataset", name, entry.plugin)

    def load(split: str, root: Path) -> Any:
        return entry.loader(split, root, download=False, image_size=image_size)

    loaded: dict[str, Any] = {}
    for split in splits or entry.splits:
        def one_split(split: str = split) -> str:
            data = load(split, Path(data_dir))
            images, labels = data.images, data.labels
            assert isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4, \
                f"images must be a uint8 tensor (N, C, H, W), got {getattr(images, 'dtype', type(images))} " \
                f"{tuple(getattr(images, 'shape', ()))}"
            assert images.shape[0] > 0, "the split is empty"
            assert images.shape[1] == entry.channels, \
                f"images have {images.shape[1]} channels; the entry declares channels={entry.channels}"
            assert labels.dtype == torch.int64 and tuple(labels.shape) == (images.shape[0],), \
                f"labels must be int64 of shape ({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
            classes = entry.num_classes or len(data.class_names or ())
            assert classes > 0, "num_classes is None and the split names no classes"
            low, high = int(labels.min()), int(labels.max())
            assert low >= 0 and high < classes, f"labels span [{low}, {high}], outside [0, {classes})"
            names = data.class_names or entry.class_names
            assert not names or len(names) == classes, f"{len(names)} class names for {classes} classes"
            again = load(split, Path(data_dir))
            assert torch.equal(again.images[:16], images[:16]) and torch.equal(again.labels[:16], labels[:16]), \
                "loading twice gives different data: sort files, seed any shuffling"
            loaded[split] = images
            return f"{images.shape[0]} images {tuple(images.shape[1:])}, {classes} classes"

        c.run(f"split {split!r}", one_split)
    if len(loaded) > 1:
        c.run("splits hold different images", lambda: _splits_differ(loaded))

    def missing() -> str:
        with tempfile.TemporaryDirectory(prefix="harness-kit-empty-") as empty:
            try:
                load(entry.splits[0], Path(empty))
            except DataError:
                return "DataError"
            except Exception as exc:
                raise AssertionError(f"an empty data folder raised {type(exc).__name__}: {exc}; raise "
                                     "registry.DataError saying what is missing and how to get it") from None
            return "loaded without files (generated data or a system-wide copy)"

    c.run("missing data is a DataError", missing)
    return c.results


SHARED_LIMIT = 0.5
"""Above this share of one split's images found byte for byte in another, the loader returns the same
data for both (a real split shares a few duplicates at most: CIFAR-10's test set about 0.1%)."""


def _splits_differ(images: dict[str, Any]) -> str:
    """Fail when most of one split's images are exact copies of another split's: a loader that ignores
    ``split`` (returns the train images for ``test``) makes every test score a training score."""
    hashes = {split: _image_hashes(batch) for split, batch in images.items()}
    splits = sorted(hashes)
    found = []
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            smaller, other = (a, b) if len(hashes[a]) <= len(hashes[b]) else (b, a)
            shared = sum(h in hashes[other] for h in hashes[smaller]) / max(1, len(hashes[smaller]))
            assert shared <= SHARED_LIMIT, (f"{shared:.0%} of the {smaller!r} images are also in {other!r}: does the "
                                            "loader ignore its split argument?")
            found.append(f"{shared:.1%} of {smaller!r} also in {other!r}")
    return "; ".join(found)


def _image_hashes(batch: Any) -> set[bytes]:
    import hashlib

    pixels = batch.contiguous().numpy().reshape(len(batch), -1)
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in pixels}


# -- metrics -----------------------------------------------------------------------------------


def check_metric(catalogue: Catalogue, name: str) -> list[CheckResult]:
    """Call ``name`` the way harness does and check what it returns (see module doc)."""
    import torch

    entry = catalogue.metrics.get(name)
    c = _Checker("metric", name, entry.plugin)
    if entry.kind == "efficiency":
        def efficiency() -> str:
            model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                        torch.nn.Flatten(), torch.nn.Linear(4, NUM_CLASSES)).eval()
            value = float(entry.compute(model, torch.randn(1, 3, 16, 16)))
            assert math.isfinite(value) and value >= 0, f"returned {value}; expected a finite value >= 0"
            return f"{value:g} {entry.unit}"

        c.run("finite, non-negative on a small model", efficiency)
        return c.results

    targets = torch.arange(40) % NUM_CLASSES
    perfect = torch.nn.functional.one_hot(targets, NUM_CLASSES).float() * 10
    wrong = torch.nn.functional.one_hot((targets + 1) % NUM_CLASSES, NUM_CLASSES).float() * 10
    values: dict[str, float] = {}

    def finite() -> str:
        for label, logits in (("perfect", perfect), ("wrong", wrong)):
            value = entry.compute(logits, targets, NUM_CLASSES)
            values[label] = float(value)
            assert math.isfinite(values[label]), f"returned {values[label]} for {label} predictions"
        return f"perfect {values['perfect']:.4g}, wrong {values['wrong']:.4g}"

    def direction() -> None:
        best, worst = values["perfect"], values["wrong"]
        better = best >= worst if entry.higher_is_better else best <= worst
        assert better, (f"perfect predictions score {best:.4g}, wrong ones {worst:.4g}: check "
                        f"higher_is_better={entry.higher_is_better}")

    def deterministic() -> None:
        logits = torch.randn(40, NUM_CLASSES, generator=torch.Generator().manual_seed(0))
        first, second = (float(entry.compute(logits, targets, NUM_CLASSES)) for _ in range(2))
        same = first == second or (math.isnan(first) and math.isnan(second))  # NaN is the finite check's
        assert same, f"two calls on the same input returned {first} and {second}"

    if c.run("finite float", finite):
        c.run("direction (higher_is_better)", direction)
    c.run("deterministic", deterministic)
    return c.results


# -- tasks -------------------------------------------------------------------------------------


def check_task(catalogue: Catalogue, name: str) -> list[CheckResult]:
    """Check that ``name``'s references resolve (dataset, metrics, candidates). Augmentation names
    need no check here: a :class:`registry.Task` with an unknown one cannot be made."""
    entry = catalogue.tasks.get(name)
    c = _Checker("task", name, entry.plugin)

    def dataset() -> None:
        assert entry.dataset in catalogue.datasets, f"dataset {entry.dataset!r} is not registered"

    def metrics() -> None:
        unknown = [m for m in entry.metrics if m not in catalogue.metrics]
        assert not unknown, f"metrics not registered: {', '.join(unknown)}"
        primary = catalogue.metrics.get(entry.primary_metric)
        assert primary.kind == "quality", f"the primary metric {primary.name!r} is an efficiency metric"

    def candidates() -> str:
        names = {*entry.protocol.candidates}
        for budget in entry.protocol.budgets.values():
            names |= set(budget.candidates or ())
        unknown = catalogue.unresolved_candidates(entry, names)
        assert not unknown, f"candidates that name no backbone: {', '.join(unknown)}"
        return f"{len(names)} candidates"

    c.run("dataset exists", dataset)
    c.run("metrics exist, primary is quality", metrics)
    c.run("candidates resolve", candidates)
    return c.results


# -- whole plugins -----------------------------------------------------------------------------


def _normal(name: str) -> str:
    """Distribution names compare as pip does: case and ``-``/``_``/``.`` do not matter."""
    return name.lower().replace("-", "_").replace(".", "_")


def check_plugin(plugins: Plugins, plugin: str, *, data_dir: str | Path | None = None,
                 export: bool = True, only: str | None = None) -> list[CheckResult]:
    """Every entry registered by ``plugin`` (its plugin or entry-point name, or its distribution's
    name, compared as pip compares them: ``harness-tiny`` == ``harness_tiny``), or those whose name
    matches the shell pattern ``only`` (a zoo of a thousand backbones is checked by sample). Datasets
    are checked only with ``data_dir`` (a folder holding their files); without it each is one result
    with ``skipped=True``, which :func:`summary` and :func:`assert_conforms` do not count as passed."""
    catalogue = plugins.catalogue
    wanted = _normal(plugin)
    results: list[CheckResult] = []

    def ours(info: PluginInfo | None) -> bool:
        return info is not None and wanted in (_normal(info.name), _normal(info.distribution or ""))

    for kind in ("backbones", "datasets", "metrics", "tasks"):
        for entry in catalogue.table(kind).list(only, plugin=ours):
            info = entry.plugin
            assert info is not None
            if kind == "backbones":
                results += check_backbone(catalogue, entry.name, export=export)
            elif kind == "datasets":
                if data_dir is None:
                    results.append(CheckResult("dataset", entry.name, "loads (needs a data folder)", True,
                                               "pass --data-dir (data_dir=) to check it", str(info.name),
                                               skipped=True))
                else:
                    results += check_dataset(catalogue, entry.name, data_dir)
            elif kind == "metrics":
                results += check_metric(catalogue, entry.name)
            else:
                results += check_task(catalogue, entry.name)
    return results
