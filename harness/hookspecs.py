"""The plugin contract: every hook a ``harness`` plugin may implement.

A plugin is a module (or object) listed under the entry-point group ``harness`` whose functions
are marked with :data:`harness.hookimpl` and named exactly like the specs below. Registration
hooks receive a ``register`` callback instead of returning values, so the core owns duplicate
names and records which plugin registered what.

Hooks are called lazily: the core calls ``register_backbones`` the first time anything asks for a
backbone, and so on. Plugin modules should therefore import torch, torchvision and other heavy
libraries inside hook bodies, builders and loaders, not at module import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    import click

    from registry import Backbone, Dataset, Metric, Task

hookspec = pluggy.HookspecMarker("harness")

# --- Catalogue phase: called once per process, the first time an entry of the kind is needed. ---


@hookspec
def register_backbones(register: Callable[[Backbone], Any]) -> None:
    """Register backbones (network architectures and their pretrained weight tags).

    Called: the first time a backbone is listed, shown or built in this process.

    :param register: call ``register(registry.Backbone(...))`` once per backbone. A name another
        plugin already registered is refused with an error naming both plugins.

    Return nothing; the return value is ignored.
    """


@hookspec
def register_datasets(register: Callable[[Dataset], Any]) -> None:
    """Register datasets (a loader that returns a split decoded into memory, plus metadata).

    Called: the first time a dataset is listed, shown or loaded in this process.

    :param register: call ``register(registry.Dataset(...))`` once per dataset.

    Return nothing; the return value is ignored.
    """


@hookspec
def register_metrics(register: Callable[[Metric], Any]) -> None:
    """Register metrics (quality metrics over logits, or efficiency metrics over a model).

    Called: the first time a metric is listed, shown or computed in this process.

    :param register: call ``register(registry.Metric(...))`` once per metric; say whether higher
        is better, since leaderboards rank by it.

    Return nothing; the return value is ignored.
    """


@hookspec
def register_tasks(register: Callable[[Task], Any]) -> None:
    """Register tasks (a dataset, its metrics and the standard protocol to train and judge on it).

    Called: the first time a task is listed, shown or run in this process. A task may name a
    dataset, metrics and candidate backbones from any plugin; they are resolved when it runs.

    :param register: call ``register(registry.Task(...))`` once per task.

    Return nothing; the return value is ignored.
    """


# --- CLI phase: called once when the ``harness`` command line is built. ---


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``harness`` command line.

    Called: once, when the CLI first looks up or lists its commands.

    :param cli: the root ``click.Group``; decorate functions with ``@cli.command()`` (or call
        ``cli.add_command``). A name already taken by a built-in command is refused.

    Return nothing; the return value is ignored.
    """


# --- Tracking phase: called as runs happen, for the trackers chosen with --track / HARNESS_TRACK. ---
# Every tracking hook receives ``run`` (a :class:`harness.track.TrackedRun`); ``run.trackers`` names
# the trackers the user chose, and a tracker plugin acts only when its own name is among them. A
# tracker that raises is reported once on stderr and the run goes on: tracking never fails training.


@hookspec
def track_names() -> list[str]:
    """Name the trackers this plugin provides (what ``--track NAME`` accepts), e.g. ``["wandb"]``.

    Called: when ``--track`` or ``HARNESS_TRACK`` is checked, before any work starts.
    :param: none.
    Return a list of tracker names.
    """
    raise NotImplementedError  # a spec: plugins implement it


@hookspec
def track_run_started(run: Any) -> None:
    """A run began: a fine-tune or a pretraining (``run.kind``), or a selection (``"select"``, the
    parent of its candidates' fine-tunes, whose ``run.parent`` is its id).

    Called: once per run, before its first epoch.
    :param run: ``TrackedRun``: ``id``, ``name``, ``kind``, ``params`` (the recipe, flat), ``tags``,
        ``parent`` (the parent run's id or None), ``experiment`` (the task), ``trackers``.
    Return nothing.
    """


@hookspec
def track_epoch_ended(run: Any, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch of ``run`` ended.

    Called: after every epoch's validation.
    :param epoch: 1-based; use it as the step.
    :param metrics: ``train_loss``, ``val_metric``, ``lr``, ``images_per_s`` (and ``train_accuracy``).
    Return nothing.
    """


@hookspec
def track_artifact(run: Any, role: str, path: str) -> None:
    """A file of ``run`` exists.

    Called: when a run's weights are registered (``weights``, as ``model.safetensors``), its ONNX
    export is written (``onnx``), a selection's table is complete (``leaderboard``, CSV); always
    before ``track_run_finished`` of that run.
    :param path: readable until the hook returns.
    Return nothing.
    """


@hookspec
def track_run_finished(run: Any, status: str, metrics: dict[str, float], version: str | None) -> None:
    """``run`` ended.

    Called: once per started run, also when it failed.
    :param status: ``FINISHED`` or ``FAILED``.
    :param metrics: its final scores (test metrics for a fine-tune, pretraining summary, for a
        selection the winner's). A candidate of a selection ends after its ONNX export and
        benchmark, and its metrics add what select weighs, named ``select/<leaderboard column>``
        (``select/ort_b1_ms``, ``select/size_mb``, ``select/parity_passed``...).
    :param version: the registry reference it registered, if any.
    Return nothing.
    """


@hookspec
def track_select_finished(run: Any, rows: list[dict[str, Any]], winner: str | None) -> None:
    """A selection's leaderboard is complete.

    Called: once per selection, before ``track_run_finished`` of its run.
    :param rows: the rows as ``--format json`` gives them.
    :param winner: the chosen model's registry reference, or None.
    Return nothing.
    """
