"""The :class:`Context`: everything a library call shares, in one object passed first.

A context holds the plugin set (and so the catalogue), the model store (opened on first use, so
commands that never touch it never create it), where data comes from, the device, and the
progress channel. A new option is one field here, not a parameter threaded through six
signatures. A context can be written down as a :class:`ContextSpec` and rebuilt in another
process, so a benchmark or executor worker sees the same plugins, store and data as its caller::

    from harness import Context
    with Context(quiet=True) as ctx:
        harness.finetune(ctx, "cifar_resnet20", "fashion-mnist", recipe)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.progress import Progress
from registry import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.plugins import Plugins, PluginsSpec
    from harness.track import Tracking
    from registry import Catalogue
    from registry.store import ModelStore


@dataclass(frozen=True)
class DataOptions:
    """Where datasets are read from, and whether loaders may download what is missing.

    ``download``: True or False as asked (``--download``/``--no-download``); None (the default)
    downloads unless ``HARNESS_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` is set."""

    data_dir: str | None = None
    download: bool | None = None

    def may_download(self) -> bool:
        """Whether a loader may fetch a missing registered dataset now."""
        if self.download is not None:
            return self.download
        from harness.environment import offline_by_environment

        return offline_by_environment(hub=True) is None


@dataclass(frozen=True)
class ContextSpec:
    """A context as plain data (JSON), to rebuild it in another process."""

    plugins: dict[str, Any]
    home: str | None
    data: DataOptions
    device: str
    quiet: bool

    def to_json(self) -> str:
        return json.dumps({"plugins": self.plugins, "home": self.home, "data": dataclasses.asdict(self.data),
                           "device": self.device, "quiet": self.quiet})

    @classmethod
    def from_json(cls, text: str) -> ContextSpec:
        raw = json.loads(text)
        return cls(raw["plugins"], raw["home"], DataOptions(**raw["data"]), raw["device"], raw["quiet"])


class Context:
    """Plugins, store, data options, device and progress for library calls.

    :param plugins: the plugin set; default the process-wide one (entry points).
    :param home: the store folder; default ``$HARNESS_HOME``. Ignored when ``store`` is given.
    :param store: an already open :class:`~registry.store.ModelStore` (the caller closes it).
    :param device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    :param quiet: no progress lines (warnings still print).
    :param track: the trackers runs are reported to (``mlflow``, ``tensorboard``, a plugin's);
        see :mod:`harness.track`.
    :param threads: CPU threads for torch, decoding and ONNX Runtime. Thread pools belong to the
        process, so this sets the process's count; default: the count already chosen in this process,
        else ``$HARNESS_THREADS``, ``$OMP_NUM_THREADS``, or the cgroup CPU quota and the CPU affinity
        (:func:`harness.environment.use_threads`). ``ctx.threads`` says which.
    """

    def __init__(self, plugins: Plugins | None = None, *, home: str | os.PathLike[str] | None = None,
                 store: ModelStore | None = None, data: DataOptions | None = None, device: str = "auto",
                 quiet: bool = False, progress: Progress | None = None, track: Sequence[str] = (),
                 tracking: Tracking | None = None, threads: int | None = None) -> None:
        from harness.environment import use_threads

        self.threads = use_threads(threads)  # before any work: torch, decoding and ORT read it
        if plugins is None:
            from harness.plugins import get_plugins

            plugins = get_plugins()
        self.plugins = plugins
        self.data = data or DataOptions()
        self.device = device
        self.progress = progress or Progress(quiet=quiet)
        from harness.track import Tracking

        self.tracking = tracking or Tracking(plugins, track, self.progress)
        self._home = store.home if store is not None else (Path(home) if home is not None else None)
        self._store = store
        self._owns_store = store is None

    # -- shared state ----------------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        return self.plugins.catalogue

    @property
    def store(self) -> ModelStore:
        """The model store, opened on first use."""
        if self._store is None:
            from registry.store import ModelStore

            self._store = ModelStore(self._home)
            self._home = self._store.home
        return self._store

    def check_new_name(self, name: str | None, alias: str | None = None) -> None:
        """Refuse, before any work, a name (and alias) a new version could not take: malformed, or the
        name of a backbone (``cifar_convnet_xs`` or ``resnet18.tv_in1k``), which a plain ``MODEL``
        argument resolves to first, so the version could only be reached as ``NAME@N``."""
        self.store.check_name_and_alias(name, alias)
        if name is not None and name.partition(".")[0] in self.catalogue.backbones:
            raise UsageError(f"{{param}} {name!r} is a backbone's name (harness show {name.partition('.')[0]}): "
                             "a plain MODEL argument would mean the backbone, not your model; pick another",
                             param="name")

    @property
    def quiet(self) -> bool:
        return self.progress.quiet

    def replace(self, *, quiet: bool | None = None, device: str | None = None,
                data: DataOptions | None = None, progress: Progress | None = None) -> Context:
        """A context sharing this one's plugins and store, with some fields changed."""
        return Context(self.plugins, store=self.store, data=data or self.data, device=device or self.device,
                       progress=progress or self.progress.child(quiet), tracking=self.tracking)

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- other processes -----------------------------------------------------------------------

    def spec(self) -> ContextSpec:
        """This context as data; raises PluginError when a plugin cannot be rebuilt elsewhere."""
        home = str(self._home) if self._home is not None else None
        return ContextSpec(self.plugins.spec().as_dict(), home, self.data, self.device, self.quiet)

    @classmethod
    def from_spec(cls, spec: ContextSpec) -> Context:
        from harness.plugins import PluginsSpec

        plugins_spec: PluginsSpec = PluginsSpec.from_dict(spec.plugins)
        return cls(plugins_spec.load(), home=spec.home, data=spec.data, device=spec.device, quiet=spec.quiet)
