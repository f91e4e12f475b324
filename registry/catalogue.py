"""The catalogue: one typed, duplicate-refusing table per kind of entry.

Each table is filled lazily by a callback (the core passes one that calls the plugin hook for
that kind), so ``harness list metrics`` never imports torchvision and a plugin's heavy code runs
only when its kind is asked for.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from registry.entries import Backbone, Dataset, Family, Metric, PluginInfo, Task, WeightTag
from registry.errors import DuplicateNameError, PluginError, UnknownNameError, UsageError

T = TypeVar("T", Backbone, Dataset, Metric, Task)

KINDS: dict[str, type] = {"backbone": Backbone, "dataset": Dataset, "metric": Metric, "task": Task}


def check_wildcard(pattern: str, param: str = "pattern") -> str:
    """``pattern`` when it is a well-formed shell-style wildcard; a ``[`` that no ``]`` closes
    (``'nope['``, which fnmatch would take as a literal ``[`` and match nothing) is refused."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1 + (pattern[i + 1:i + 2] == "!")
            j += pattern[j:j + 1] == "]"  # a ']' first in the set is one of its characters
            end = pattern.find("]", j)
            if end < 0:
                raise UsageError(f"{{param}} {pattern!r} is a malformed wildcard: the '[' at character {i + 1} is "
                                 "never closed by ']'; close the set ('resnet[15]*') or leave the '[' out "
                                 "(wildcards: * any text, ? one character, [abc] one of a, b, c)", param=param)
            i = end + 1
        else:
            i += 1
    return pattern


class Table(Generic[T]):
    """Entries of one kind, by name.

    ``filler`` is called once, on first use, with this table; until then the table is empty and
    cheap. A :class:`Family` deferred with :meth:`defer` is filled only when a name or pattern it
    covers is asked for, or when every entry is listed.
    """

    def __init__(self, kind: str, entry_type: type[T], filler: Callable[[Table[T]], None] | None = None):
        self.kind = kind
        self.entry_type: type[T] = entry_type
        self._entries: dict[str, T] = {}
        self._filler: Callable[[Table[T]], None] | None = filler
        self._filled = filler is None
        self._pending: list[tuple[Family, Callable[[], None]]] = []
        self._unavailable: list[Family] = []

    def defer(self, family: Family, fill: Callable[[], None]) -> None:
        """Fill ``family`` later by calling ``fill()`` (which adds its entries); an unavailable family
        only keeps its message for the names it covers."""
        if family.unavailable is not None:
            self._unavailable.append(family)
        else:
            self._pending.append((family, fill))

    def spelled(self, name: str) -> str:
        """Backbone names hold no '/', so ``timm/resnet50`` (timm's own spelling) is ``timm_resnet50``."""
        return name.replace("/", "_", 1) if self.kind == "backbone" else name

    def _ensure(self, name: str | None = None, plugin: Callable[[PluginInfo | None], bool] | None = None) -> None:
        """Fill the table; then the deferred families that can hold ``name`` (every one when ``None``)
        and, given ``plugin``, that come from a plugin it accepts."""
        if not self._filled:
            self._filled = True
            assert self._filler is not None
            self._filler(self)
        due = [(f, fill) for f, fill in self._pending
               if (name is None or f.covers(name)) and (plugin is None or plugin(f.plugin))]
        for item in due:
            self._pending.remove(item)
            item[1]()

    def add(self, entry: T, plugin: PluginInfo | None = None) -> T:
        """Add ``entry`` on behalf of ``plugin``; refuse wrong types and duplicate names."""
        if not isinstance(entry, self.entry_type):
            who = f" from {plugin}" if plugin else ""
            raise PluginError(
                f"register() for {self.kind}s got {type(entry).__name__}{who}; "
                f"pass a registry.{self.entry_type.__name__}"
            )
        if plugin is not None and entry.plugin is None:
            entry = dataclasses.replace(entry, plugin=plugin)
        existing = self._entries.get(entry.name)
        if existing is not None:
            raise DuplicateNameError(self.kind, entry.name, str(existing.plugin or "unknown plugin"),
                                     str(entry.plugin or "unknown plugin"))
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises with close matches."""
        name = self.spelled(name)
        self._ensure(name)
        try:
            return self._entries[name]
        except KeyError:
            self.check_available(name)
            raise UnknownNameError(self.kind, name, self._entries) from None

    def check_available(self, name: str) -> None:
        """Raise the install hint when ``name`` belongs to a :class:`Family` declared unavailable (its
        library is missing): every lookup that fails says how to get it, not "unknown name"."""
        name = self.spelled(name)
        self._ensure(name)
        for family in self._unavailable:
            if family.covers(name):
                raise UsageError(f"{self.kind} {name!r} is one of {family.prefix}*, which needs "
                                 f"{family.unavailable}")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        name = self.spelled(name)
        self._ensure(name)
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        self._ensure()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        self._ensure()
        return len(self._entries)

    def names(self) -> list[str]:
        self._ensure()
        return sorted(self._entries)

    def list(self, pattern: str | None = None, *,
             plugin: Callable[[PluginInfo | None], bool] | None = None) -> list[T]:
        """Entries whose name matches the shell-style ``pattern`` (all when ``None``) and, given
        ``plugin``, whose plugin it accepts (so checking one plugin never fills another's family)."""
        pattern = self.spelled(check_wildcard(pattern)) if pattern is not None else None
        self._ensure(pattern, plugin)
        return [self._entries[n] for n in sorted(self._entries)
                if (pattern is None or fnmatch.fnmatchcase(n, pattern))
                and (plugin is None or plugin(self._entries[n].plugin))]


class Catalogue:
    """Every backbone, dataset, metric and task the loaded plugins registered."""

    def __init__(self, fillers: dict[str, Callable[[Table], None]] | None = None) -> None:
        fillers = fillers or {}
        self.backbones: Table[Backbone] = Table("backbone", Backbone, fillers.get("backbone"))
        self.datasets: Table[Dataset] = Table("dataset", Dataset, fillers.get("dataset"))
        self.metrics: Table[Metric] = Table("metric", Metric, fillers.get("metric"))
        self.tasks: Table[Task] = Table("task", Task, fillers.get("task"))

    def table(self, kind: str) -> Table:
        """The table for ``kind`` ('backbone' or 'backbones', and so on)."""
        singular = kind[:-1] if kind.endswith("s") else kind
        if singular not in KINDS:
            raise UnknownNameError("kind", kind, [k + "s" for k in KINDS])
        return getattr(self, singular + "s")

    def backbone(self, name: str) -> tuple[Backbone, WeightTag | None]:
        """Resolve ``family_variant[.tag]`` to the backbone and (if given) its weight tag."""
        base, _, tag = name.partition(".")
        backbone = self.backbones.get(base)
        if not tag:
            return backbone, None
        weights = backbone.tag(tag)
        if weights is None:
            tags = [w.tag for w in backbone.weights]
            raise UnknownNameError(f"weight tag of {base}", tag, tags,
                                   hint=f"{base} has {', '.join(tags) or 'no pretrained weights'}")
        return backbone, weights

    def task(self, name: str) -> Task:
        """The task called ``name``, with its references checked (see :meth:`check_task`): every
        command that runs a task looks it up here, so a plugin's broken task names itself."""
        task = self.tasks.get(name)
        self.check_task(task)
        return task

    def check_task(self, task: Task) -> None:
        """Refuse a task whose dataset or metrics nothing registered, or whose primary metric is not a
        quality metric, with a :class:`PluginError` naming the task and its plugin (the plugin's
        mistake, not the user's)."""
        who = f"task {task.name!r} ({task.plugin or 'no plugin'})"
        if task.dataset not in self.datasets:
            raise PluginError(f"{who} names dataset {task.dataset!r}, which nothing registered"
                              f"{_close(task.dataset, self.datasets.names())}; install the plugin that "
                              "provides it or fix the task's dataset=")
        for metric in task.metrics:
            if metric not in self.metrics:
                raise PluginError(f"{who} names metric {metric!r}, which nothing registered"
                                  f"{_close(metric, self.metrics.names())}; fix the task's metrics=")
        primary = self.metrics.get(task.primary_metric)
        if primary.kind != "quality":
            raise PluginError(f"{who}: its first metric {primary.name!r} ranks models but is a "
                              f"{primary.kind} metric; put a quality metric first in metrics=")

    def unresolved_candidates(self, task: Task, names: Iterable[str] | None = None) -> list[str]:
        """The candidates of ``task`` (``names``, default every budget's) that name no backbone, weight
        tag or matching wildcard. Registry references are the store's to check, and a name in a family
        declared unavailable is the user's missing library, not the task's mistake."""
        if names is None:
            names = {*task.protocol.candidates,
                     *(n for b in task.protocol.budgets.values() for n in (b.candidates or ()))}
        return sorted({n for n in names if not self._candidate_resolves(n)})

    def _candidate_resolves(self, ref: str) -> bool:
        if "@" in ref or ":" in ref:
            return True
        if any(ch in ref for ch in "*?["):
            return bool(self.list_weights(ref) if "." in ref else self.backbones.list(ref))
        try:
            self.backbone(ref)
        except UnknownNameError:
            return False
        except UsageError:  # an unavailable family: the install hint comes when it is used
            return True
        return True

    def check_candidates(self, task: Task, names: Iterable[str] | None = None) -> None:
        """Refuse a task whose candidates name nothing, with a :class:`PluginError` naming the task and its
        plugin: a typo in a plugin's task must not read as the user's typo."""
        unknown = self.unresolved_candidates(task, names)
        if unknown:
            close = _close(unknown[0].partition(".")[0], self.backbones.names())
            many = len(unknown) > 1
            raise PluginError(f"task {task.name!r} ({task.plugin or 'no plugin'}) names candidate{'s' * many} "
                              f"{', '.join(map(repr, unknown))}, which match{'es' * (not many)} no backbone{close}; "
                              "fix the task's protocol candidates (or pass {param:candidates})")

    def list_weights(self, pattern: str) -> list[tuple[Backbone, WeightTag]]:
        """``(backbone, tag)`` pairs whose ``name.tag`` matches ``pattern`` (e.g. ``*.tv_in1k``)."""
        pattern = self.backbones.spelled(check_wildcard(pattern))
        return [
            (b, w)
            for b in self.backbones.list(pattern.partition(".")[0] or "*")
            for w in b.weights
            if fnmatch.fnmatchcase(f"{b.name}.{w.tag}", pattern)
        ]

    def find(self, name: str) -> list[tuple[str, object]]:
        """Every ``(kind, entry)`` called ``name``: ``cifar10`` is both a dataset and a task."""
        found: list[tuple[str, object]] = []
        for kind in KINDS:
            table = self.table(kind)
            lookup = name.partition(".")[0] if kind == "backbone" else name
            if lookup in table:
                found.append((kind, table.get(lookup)))
        if not found:
            self.backbones.check_available(name.partition(".")[0])
            every = [n for k in KINDS for n in self.table(k).names()]
            raise UnknownNameError("name", name, every,
                                   hint="run 'harness list backbones|datasets|metrics|tasks'")
        return found


def _close(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
