"""Experiment tracking through plugin hooks: runs, epochs, artifacts and selections, sent to the
trackers the user chose (``--track mlflow,tensorboard`` or ``HARNESS_TRACK``).

Trackers are plugins implementing the ``track_*`` hooks of :mod:`harness.hookspecs` (the built-in
MLflow and TensorBoard ones, or a third party's). :class:`Tracking` calls them; each implementation
runs isolated, and one that raises is reported once (by its tracker name) and skipped from then on,
so a broken or unreachable tracker never fails a training run; it is still told when a run it was
told of ends, so that it can close that run. With no tracker chosen, nothing is called.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import UnknownNameError, keys

if TYPE_CHECKING:
    from harness.plugins import Plugins
    from harness.progress import Progress
    from registry.records import ModelVersion

ENV = "HARNESS_TRACK"
WEIGHTS_NAME = "model.safetensors"
"""The file name trackers get a run's weights under (the store names its files by sha256)."""


@dataclass(frozen=True)
class TrackedRun:
    """One tracked run, as the hooks receive it."""

    id: str
    name: str
    kind: str  # finetune | pretrain | select
    experiment: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    parent: str | None = None
    trackers: tuple[str, ...] = ()


def flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested recipe fields as ``a.b`` keys with scalar values (what trackers take as params)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        elif value is not None:
            out[name] = value
    return out


def available(plugins: Plugins) -> list[str]:
    """Every tracker name the loaded plugins provide."""
    names: list[str] = []
    for impl in plugins.manager.hook.track_names.get_hookimpls():
        try:
            provided = impl.function()
        except (Exception, SystemExit):  # a broken tracker plugin (even one calling sys.exit) provides nothing
            continue
        if isinstance(provided, (list, tuple)):  # the hook returns a list of names; anything else provides none
            names.extend(str(name) for name in provided)
    return sorted(set(names))


def chosen(plugins: Plugins, text: str | None) -> tuple[str, ...]:
    """The trackers of ``--track`` (or ``HARNESS_TRACK``), checked against the plugins' names."""
    raw = text if text is not None else os.environ.get(ENV, "")
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    known = available(plugins) if names else []
    for name in names:
        if name not in known:
            hint = (f"install its extra: pip install 'imgcls-harness[{name}]'" if name in BUILTIN_EXTRAS else
                    "a tracker comes from a plugin: install the package that provides it ('harness plugins' lists "
                    "what loaded)")
            raise UnknownNameError("tracker", name, known, hint=hint)
    return names


BUILTIN_EXTRAS = ("mlflow", "tensorboard")
"""Our own trackers, each behind the extra of its name."""


class Tracking:
    """Calls the tracking hooks for the chosen trackers; keeps the current parent run."""

    def __init__(self, plugins: Plugins, trackers: Sequence[str], progress: Progress) -> None:
        self.plugins, self.trackers, self.progress = plugins, tuple(trackers), progress
        self.parent: str | None = None
        self.runs: dict[str, TrackedRun] = {}  # registry reference -> the run that registered it
        self._broken: set[int] = set()
        self._told: dict[int, set[str]] = {}  # plugin -> the runs it was told began (it is told their end too)
        self._held: dict[str, tuple[TrackedRun, str, dict[str, float]]] = {}  # version -> an end not yet sent
        self._holding = 0

    @property
    def on(self) -> bool:
        return bool(self.trackers)

    def _call(self, hook: str, **kwargs: Any) -> None:
        if not self.trackers:
            return
        run = kwargs.get("run")
        for impl in getattr(self.plugins.manager.hook, hook).get_hookimpls():
            key = id(impl.plugin)
            # a tracker switched off is still told that a run it was told of ended: it may close it
            ending = hook == "track_run_finished" and run is not None and run.id in self._told.get(key, ())
            if key in self._broken and not ending:
                continue
            if hook == "track_run_started" and run is not None:
                self._told.setdefault(key, set()).add(run.id)
            try:
                # stdout is for --format json/csv: a tracker's own prints (MLflow's "View run at ...") go to stderr
                with contextlib.redirect_stdout(sys.stderr):
                    impl.function(*(kwargs[name] for name in impl.argnames))
            except (Exception, SystemExit) as exc:  # tracking must never fail (nor end) the run it tracks
                if key not in self._broken:
                    self._broken.add(key)
                    why = " ".join(str(exc).split())[:400] or type(exc).__name__  # all of it: fixes are often last
                    self.progress.warn(f"tracker {self._tracker_name(impl)} failed in {hook} and is off for "
                                       f"this run: {why}")
            if ending and run is not None:
                self._told[key].discard(run.id)

    def _tracker_name(self, impl: Any) -> str:
        """The tracker names (``'mlflow'``) the user chose that ``impl``'s plugin provides; its
        plugin name only when it provides none of them."""
        for names_impl in self.plugins.manager.hook.track_names.get_hookimpls():
            if names_impl.plugin is impl.plugin:
                try:
                    found: Any = names_impl.function()
                    names = [repr(n) for n in found or [] if n in self.trackers]
                except (Exception, SystemExit):  # a broken track_names: fall back on the plugin's name
                    names = []
                if names:
                    return " and ".join(names)
        return repr(impl.plugin_name)

    def start(self, name: str, kind: str, experiment: str, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, str] | None = None) -> TrackedRun:
        run = TrackedRun(uuid.uuid4().hex[:16], name, kind, experiment, flat(params or {}), dict(tags or {}),
                         self.parent, self.trackers)
        self._call("track_run_started", run=run)
        return run

    @contextmanager
    def running(self, name: str, kind: str, experiment: str, params: Mapping[str, Any] | None = None,
                tags: Mapping[str, str] | None = None, *, enabled: bool = True) -> Iterator[TrackedRun | None]:
        """A started run (None when no tracker is chosen, or not ``enabled``), reported ``FAILED``
        if the block raises; the caller reports ``FINISHED`` itself, with its scores."""
        if not (self.on and enabled):
            yield None
            return
        run = self.start(name, kind, experiment, params, tags)
        try:
            yield run
        except BaseException:
            self.finish(run, "FAILED")
            raise

    def epoch(self, run: TrackedRun, record: Mapping[str, Any]) -> None:
        metrics = {k: float(v) for k, v in record.items()
                   if k not in ("epoch", "steps") and isinstance(v, (int, float))}
        self._call("track_epoch_ended", run=run, epoch=int(record.get("epoch", 0)), metrics=metrics)

    def artifact(self, run: TrackedRun, role: str, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Hand a file of ``run`` to the trackers; ``name`` is the file name they see (a stored file
        is named by its sha256: weights travel as ``model.safetensors``)."""
        source = Path(path)
        if not self.on or name is None or name == source.name:
            self._call("track_artifact", run=run, role=role, path=str(source))
            return
        with tempfile.TemporaryDirectory(prefix="harness-track-") as tmp:
            named = Path(tmp) / name
            try:
                os.link(source, named)  # no copy where the file system allows
            except OSError:
                shutil.copyfile(source, named)
            self._call("track_artifact", run=run, role=role, path=str(named))

    def finish(self, run: TrackedRun, status: str, metrics: Mapping[str, Any] | None = None,
               version: str | None = None) -> None:
        """Report the end of ``run``; inside :meth:`holding`, a run that registered ``version`` waits
        for :meth:`release` (its ONNX export and speed come later)."""
        values = _numbers(metrics)
        if version is not None and run.kind != "select":
            self.runs[version] = run
            if self._holding and status == "FINISHED":
                self._held[version] = (run, status, values)
                return
        self._call("track_run_finished", run=run, status=status, metrics=values, version=version)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Within the block, the end of each run that registers a version is held until
        :meth:`release` (a selection sends each candidate's ONNX file, latency, size and parity
        first); runs still held when the block ends are ended then, with what they had."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if not self._holding:
                for version in list(self._held):
                    self.release(version)

    def release(self, version: str, metrics: Mapping[str, Any] | None = None) -> None:
        """End the held run that registered ``version``, adding ``metrics`` to its own (nothing
        when no run of it is held: trained elsewhere, cached, or not tracked)."""
        held = self._held.pop(version, None)
        if held is not None:
            run, status, values = held
            self._call("track_run_finished", run=run, status=status, metrics={**values, **_numbers(metrics)},
                       version=version)

    def replay(self, version: ModelVersion, host: str | None = None) -> None:
        """Report a run trained elsewhere (on a Ray worker) now, from what its version recorded: the
        trackers are configured where the driver runs, and a worker may not even reach their server."""
        if not self.on:
            return
        tags = {"harness.trained_on": host} if host else None
        source = version.recipe.get("source")  # named like a local run: task/candidate
        name = f"{version.task}/{source}" if version.kind == "finetune" and version.task and source else version.name
        run = self.start(name, version.kind, version.task or version.name, version.recipe, tags)
        for record in version.metrics.get(keys.HISTORY) or []:
            self.epoch(run, record)
        weights = version.artifacts.get(keys.ROLE_WEIGHTS)
        if weights is not None:
            self.artifact(run, "weights", weights.path, WEIGHTS_NAME)
        self.finish(run, "FINISHED", version.metrics.get(keys.TEST) or {}, version.ref)

    def select_finished(self, run: TrackedRun, rows: list[dict[str, Any]], winner: str | None) -> None:
        self._call("track_select_finished", run=run, rows=rows, winner=winner)

    @contextmanager
    def child_of(self, run: TrackedRun | None) -> Iterator[None]:
        """Runs started inside are children of ``run`` (a selection's candidates); None: no parent change."""
        if run is None:
            yield
            return
        previous, self.parent = self.parent, run.id
        try:
            yield
        finally:
            self.parent = previous


def _numbers(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The numeric values of ``metrics`` as floats (booleans count: parity passed is 1.0)."""
    return {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}


def provided(name: str, module: str) -> list[str]:
    """``[name]`` when ``module`` can be imported, else ``[]``: what a tracker plugin whose library
    is an optional extra returns from ``track_names`` (``--track name`` then names the extra)."""
    import importlib.util

    return [name] if importlib.util.find_spec(module) is not None else []
