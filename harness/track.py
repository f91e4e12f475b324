"""Experiment tracking through plugin hooks: runs, epochs, artifacts and selections, sent to the
trackers the user chose (``--track mlflow,tensorboard`` or ``HARNESS_TRACK``).

Trackers are plugins implementing the ``track_*`` hooks of :mod:`harness.hookspecs` (the built-in
MLflow and TensorBoard ones, or a third party's). :class:`Tracking` calls them; each implementation
runs isolated, and one that raises is reported once and skipped from then on, so a broken or
unreachable tracker never fails a training run. With no tracker chosen, nothing is called.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry import UnknownNameError, first_line, keys

if TYPE_CHECKING:
    from harness.plugins import Plugins
    from harness.progress import Progress
    from registry.records import ModelVersion

ENV = "HARNESS_TRACK"


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
            names.extend(impl.function() or [])
        except Exception:  # a broken tracker plugin provides nothing
            continue
    return sorted(set(names))


def chosen(plugins: Plugins, text: str | None) -> tuple[str, ...]:
    """The trackers of ``--track`` (or ``HARNESS_TRACK``), checked against the plugins' names."""
    raw = text if text is not None else os.environ.get(ENV, "")
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    known = available(plugins) if names else []
    for name in names:
        if name not in known:
            raise UnknownNameError("tracker", name, known,
                                   hint="install its extra (pip install 'imgcls-harness[mlflow]') or its plugin")
    return names


class Tracking:
    """Calls the tracking hooks for the chosen trackers; keeps the current parent run."""

    def __init__(self, plugins: Plugins, trackers: Sequence[str], progress: Progress) -> None:
        self.plugins, self.trackers, self.progress = plugins, tuple(trackers), progress
        self.parent: str | None = None
        self.runs: dict[str, TrackedRun] = {}  # registry reference -> the run that registered it
        self._broken: set[int] = set()

    @property
    def on(self) -> bool:
        return bool(self.trackers)

    def _call(self, hook: str, **kwargs: Any) -> None:
        if not self.trackers:
            return
        for impl in getattr(self.plugins.manager.hook, hook).get_hookimpls():
            if id(impl.plugin) in self._broken:
                continue
            try:
                impl.function(*(kwargs[name] for name in impl.argnames))
            except Exception as exc:  # tracking must never fail the run it tracks
                self._broken.add(id(impl.plugin))
                self.progress.warn(f"tracker {impl.plugin_name!r} failed in {hook} and is off for this run: "
                                   f"{first_line(exc)}")

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

    def artifact(self, run: TrackedRun, role: str, path: str | os.PathLike[str]) -> None:
        self._call("track_artifact", run=run, role=role, path=str(path))

    def finish(self, run: TrackedRun, status: str, metrics: Mapping[str, Any] | None = None,
               version: str | None = None) -> None:
        values = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        if version is not None:
            self.runs[version] = run
        self._call("track_run_finished", run=run, status=status, metrics=values, version=version)

    def replay(self, version: ModelVersion, host: str | None = None) -> None:
        """Report a run trained elsewhere (on a Ray worker) now, from what its version recorded: the
        trackers are configured where the driver runs, and a worker may not even reach their server."""
        if not self.on:
            return
        tags = {"harness.trained_on": host} if host else None
        run = self.start(version.name, version.kind, version.task or version.name, version.recipe, tags)
        for record in version.metrics.get(keys.HISTORY) or []:
            self.epoch(run, record)
        weights = version.artifacts.get(keys.ROLE_WEIGHTS)
        if weights is not None:
            self.artifact(run, "weights", weights.path)
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


def provided(name: str, module: str) -> list[str]:
    """``[name]`` when ``module`` can be imported, else ``[]``: what a tracker plugin whose library
    is an optional extra returns from ``track_names`` (``--track name`` then names the extra)."""
    import importlib.util

    return [name] if importlib.util.find_spec(module) is not None else []
