"""The one factory that builds the plugin manager, and the catalogue it fills.

Plugins come from the entry-point group ``harness``. Our own built-in plugins are listed there by
our pyproject, so they load exactly like a third-party package's. A plugin that fails to import,
has a misspelled hook, or raises inside a hook (``sys.exit()`` included) is reported on stderr by
name and left out; the rest keep working. ``HARNESS_STRICT_PLUGINS=1`` turns those reports (and
every problem ``harness plugins`` lists) into errors.

Environment variables:

- ``HARNESS_LOAD_PLUGINS``: comma-separated allow-list of entry-point or distribution names; only
  those load (an empty value loads none).
- ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points at all (tests and debugging pass
  plugins explicitly).
- ``HARNESS_STRICT_PLUGINS=1``: any plugin problem is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from registry import Catalogue, DataError, Family, PluginError, PluginInfo, Table, UsageError
from registry.errors import DuplicateNameError

ENTRY_POINT_GROUP = "harness"
HOOK_FOR_KIND = {
    "backbone": "register_backbones",
    "dataset": "register_datasets",
    "metric": "register_metrics",
    "task": "register_tasks",
}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class PluginRecord:
    """What happened to one plugin: loaded, failed (with the error) or skipped by the allow-list."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    status: str = "loaded"
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)  # kind -> entries it registered (once filled)
    problems: list[str] = field(default_factory=list)  # mistakes that left some of its entries out
    trackers: list[str] = field(default_factory=list)  # the --track names it provides (track_names)

    @property
    def info(self) -> PluginInfo:
        return PluginInfo(self.name, self.distribution, self.version)

    @property
    def who(self) -> str:
        return self.name + (f" ({self.distribution} {self.version})" if self.distribution else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "module": self.module, "status": self.status, "hooks": self.hooks,
            "entries": dict(self.entries), "trackers": list(self.trackers), "problems": list(self.problems),
            "error": self.error,
        }


def _plugin_fault(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a plugin's import or hook, is that plugin's problem: any exception,
    and ``sys.exit()`` too (a plugin must not end the command); only Ctrl-C (KeyboardInterrupt) is the user's."""
    return not isinstance(exc, KeyboardInterrupt)


def _describe(exc: BaseException) -> str:
    """``exc`` as the report says it: ``RuntimeError: boom``, or ``SystemExit: it called sys.exit(3)``."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: it called sys.exit({exc.code!r}) (a plugin must raise an exception, not exit)"
    return f"{type(exc).__name__}: {exc}"


def _stderr_report(message: str) -> None:
    from harness.progress import Progress

    Progress().warn(message)


class Plugins:
    """A plugin manager plus the record of every plugin and the catalogue they fill.

    Build one with :func:`load_plugins`; tests pass only the plugins they name.
    """

    def __init__(self, strict: bool = False, report: Callable[[str], None] = _stderr_report):
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.strict = strict
        self._report = report
        self._catalogue: Catalogue | None = None
        self.entry_points = False
        self.allow: set[str] | None = None
        self.in_code: list[tuple[str, str | None]] = []  # (plugin name, import reference) of add()ed plugins

    # -- loading ---------------------------------------------------------------------------

    def fail(self, record: PluginRecord, error: str) -> None:
        """Record a broken plugin; in strict mode stop here."""
        record.status = "failed"
        record.error = error
        self.records[record.name] = record
        message = f"plugin {record.who}: {error}"
        if self.strict:
            raise PluginError(message + " (HARNESS_STRICT_PLUGINS is set)")
        self._report(message + "; it was not loaded")

    def problem(self, record: PluginRecord, error: str, consequence: str) -> None:
        """Record a mistake that leaves out part of a plugin (one hook's entries, one entry) while its
        other hooks stay active; in strict mode stop here."""
        message = f"plugin {record.who}: {error}"
        if self.strict:
            raise PluginError(message + " (HARNESS_STRICT_PLUGINS is set)")
        if record.status == "loaded":
            record.status = "partial"
        if error in record.problems:  # found again (commands added to a second group): said once
            return
        record.problems.append(error)
        self._report(f"{message}; {consequence}")

    def add(self, plugin: object, name: str | None = None, distribution: str | None = None,
            version: str | None = None) -> bool:
        """Register one plugin object or module; report instead of raising when it is broken."""
        name = name or default_name(plugin)
        record = PluginRecord(name, distribution, version, getattr(plugin, "__name__", None))
        if name in self.records and self.records[name].status == "loaded":
            self.fail(record, f"plugin name {name!r} is already used by "
                              f"{self.records[name].distribution or self.records[name].module}")
            return False
        try:
            self.manager.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self.fail(record, f"invalid hook implementation: {exc}")
            return False
        unknown = self._unknown_hooks(plugin)
        if unknown:
            self.manager.unregister(plugin)
            self.fail(record, "; ".join(unknown))
            return False
        record.hooks = sorted(impl_name for impl_name in HOOK_NAMES
                              if any(i.plugin is plugin for i in
                                     getattr(self.manager.hook, impl_name).get_hookimpls()))
        self.records[name] = record
        self._catalogue = None
        for hook_name in HOOK_NAMES:  # a hook without @harness.hookimpl is silently never called
            if hook_name not in record.hooks and callable(getattr(plugin, hook_name, None)):
                self.problem(record, f"{hook_name} is not marked with @harness.hookimpl, so harness never "
                                     "calls it", "decorate it with @harness.hookimpl")
        return True

    def _unknown_hooks(self, plugin: object) -> list[str]:
        """Hook implementations whose names match no hookspec (what ``check_pending`` catches)."""
        problems = []
        for hook_name in dir(self.manager.hook):
            caller = getattr(self.manager.hook, hook_name)
            if hook_name.startswith("_") or not isinstance(caller, pluggy.HookCaller):
                continue
            if caller.spec is not None:
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    close = difflib.get_close_matches(hook_name, HOOK_NAMES, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    problems.append(f"unknown hook {hook_name!r}{hint}")
        return problems

    def spec(self) -> PluginsSpec:
        """How to build this same plugin set in another process (a benchmark or executor worker)."""
        missing = [name for name, reference in self.in_code if reference is None]
        if missing:
            raise PluginError(f"plugin {missing[0]!r} was passed in code as an object that another process "
                              "cannot import; define it at the top level of an importable module (a module, "
                              "a module-level object, or a class that takes no arguments)")
        return PluginsSpec(self.entry_points, None if self.allow is None else tuple(sorted(self.allow)),
                           self.strict, tuple(reference for _, reference in self.in_code if reference))

    def load_entry_points(self, allow: set[str] | None = None) -> None:
        """Load every plugin of the ``harness`` entry-point group (subject to ``allow``)."""
        self.entry_points, self.allow = True, allow
        seen: set[tuple[str, str]] = set()
        known: dict[str, tuple[str | None, str | None]] = {}
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                         key=lambda ep: _load_order(ep, known)):
            if (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            dist_name, version = _distribution_of(ep, known)
            if allow is not None and ep.name not in allow and (dist_name or "") not in allow:
                self.records[ep.name] = PluginRecord(ep.name, dist_name, version, ep.value,
                                                     status="skipped",
                                                     error="not in HARNESS_LOAD_PLUGINS")
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # a broken plugin (even one calling sys.exit) must not take the CLI down
                if not _plugin_fault(exc):
                    raise
                self.fail(PluginRecord(ep.name, dist_name, version, ep.value),
                          f"failed to import {ep.value}: {_describe(exc)}")
                continue
            self.add(plugin, name=ep.name, distribution=dist_name, version=version)

    # -- the catalogue ---------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue; each kind is filled on first use by calling its hook."""
        if self._catalogue is None:
            self._catalogue = Catalogue({kind: self._filler(kind) for kind in HOOK_FOR_KIND})
        return self._catalogue

    def _filler(self, kind: str) -> Callable[[Table], None]:
        hook_name = HOOK_FOR_KIND[kind]

        def fill(table: Table) -> None:
            # get_hookimpls() is in registration order: the plugin loaded first wins a duplicate name
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                record = self.records.get(impl.plugin_name) or PluginRecord(impl.plugin_name)
                self._register_from(table, record, hook_name, functools.partial(_call_register, impl))

        return fill

    def _register_from(self, table: Table, record: PluginRecord, what: str,
                       call: Callable[[Callable[[Any], None]], Any], *, user_errors: bool = False) -> None:
        """Collect what ``call(register)`` registers and add it to ``table`` on behalf of ``record``'s
        plugin: a raising hook, a duplicate or a bad entry is that plugin's problem, reported, and the
        rest goes on. A :class:`Family` is deferred; its own fill goes through here when it is due, and
        (``user_errors``) a UsageError or DataError it raises is the user's to fix, so it stops the command."""
        kind = table.kind
        staged: list[Any] = []
        try:
            returned = call(staged.append)
        except BaseException as exc:  # isolate a plugin whose hook raises (or calls sys.exit)
            if not _plugin_fault(exc) or (user_errors and isinstance(exc, (UsageError, DataError))):
                raise
            self.problem(record, f"{what} raised {_describe(exc)}",
                         f"its {kind}s were left out (its other hooks stay active)")
            return
        if returned is not None:
            self.problem(record, f"{what} returned a {type(returned).__name__} instead of calling "
                                 "register(entry)", f"call register(entry) for each {kind}; what it "
                                                    "returned was ignored")
        added = 0
        for entry in staged:
            if isinstance(entry, Family):
                self._defer(table, record, entry)
                continue
            try:
                table.add(entry, record.info)
                added += 1
            except DuplicateNameError as exc:
                if self.strict:
                    raise
                self.problem(record, f"{kind} {exc.name!r} is already registered by {exc.first}",
                             f"its {kind} {exc.name!r} was left out (the first registration wins; "
                             "rename it, or exclude one plugin with HARNESS_LOAD_PLUGINS)")
            except PluginError as exc:
                self.problem(record, str(exc), "that entry was left out")
        record.entries[kind] = record.entries.get(kind, 0) + added

    def _defer(self, table: Table, record: PluginRecord, family: Family) -> None:
        family = dataclasses.replace(family, plugin=family.plugin or record.info)
        fill = family.fill

        def due() -> None:
            assert fill is not None
            self._register_from(table, record, f"the {family.prefix}* {table.kind}s' fill", fill, user_errors=True)

        table.defer(family, due)

    def audit(self) -> list[PluginRecord]:
        """Run every registration hook (filling the catalogue) and check each task's references, so
        each plugin's record says what it registered and what went wrong; what ``harness plugins`` shows."""
        catalogue = self.catalogue
        for kind in HOOK_FOR_KIND:
            catalogue.table(kind).names()
        for impl in self.manager.hook.track_names.get_hookimpls():
            record = self.records.get(impl.plugin_name)
            try:
                names = [str(n) for n in (_call(impl) or [])]
            except BaseException as exc:  # a tracker plugin that cannot even name itself
                if not _plugin_fault(exc):
                    raise
                if record is not None:
                    self.problem(record, f"track_names raised {_describe(exc)}", "it tracks nothing")
                continue
            if record is not None:
                record.trackers = names
        for task in catalogue.tasks:
            try:
                catalogue.check_task(task)
                catalogue.check_candidates(task)
            except PluginError as exc:
                record = self.records.get(task.plugin.name) if task.plugin else None
                if record is not None and self.strict:  # a problem is a problem: strict makes it the error
                    raise PluginError(f"{exc} (HARNESS_STRICT_PLUGINS is set)") from None
                if record is not None and str(exc) not in record.problems:
                    record.problems.append(str(exc))
                    record.status = "partial" if record.status == "loaded" else record.status
        return sorted(self.records.values(), key=lambda r: r.name)

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add subcommands to ``cli``; refuse a taken command name (including the
        built-in commands ``cli`` imports lazily, listed in its ``reserved_names``)."""
        reserved = set(getattr(cli, "reserved_names", ()))
        for impl in self.manager.hook.register_commands.get_hookimpls():
            before = dict(cli.commands)
            record = self.records.get(impl.plugin_name) or PluginRecord(impl.plugin_name)
            try:
                _call(impl, cli=cli)
            except BaseException as exc:  # isolate a plugin whose hook raises (or calls sys.exit)
                if not _plugin_fault(exc):
                    raise
                cli.commands.clear()
                cli.commands.update(before)
                self.problem(record, f"register_commands raised {_describe(exc)}",
                             "its commands were left out")
                continue
            for name, command in list(cli.commands.items()):
                if before.get(name, command) is not command or (name in reserved and name not in before):
                    if name in before:
                        cli.commands[name] = before[name]
                    else:
                        del cli.commands[name]
                    self.problem(record, f"command {name!r} is already taken", "it was not replaced")


@dataclass(frozen=True)
class PluginsSpec:
    """A plugin set as data: entry points (with the allow-list) plus plugins added in code, each as
    an import reference (``package.module``, ``module:object`` or ``module:Class()``)."""

    entry_points: bool
    allow: tuple[str, ...] | None
    strict: bool
    in_code: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"entry_points": self.entry_points, "allow": None if self.allow is None else list(self.allow),
                "strict": self.strict, "in_code": list(self.in_code)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PluginsSpec:
        allow = data.get("allow")
        return cls(bool(data["entry_points"]), None if allow is None else tuple(allow), bool(data["strict"]),
                   tuple(data.get("in_code", ())))

    def load(self, report: Callable[[str], None] = _stderr_report) -> Plugins:
        """Build the plugin set this spec describes."""
        result = Plugins(strict=self.strict, report=report)
        if self.entry_points:
            result.load_entry_points(None if self.allow is None else set(self.allow))
        for reference in self.in_code:
            result.add(import_reference(reference))
        return result


def default_name(plugin: object) -> str:
    """A plugin's name when none is given: its module name, or its class name."""
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def plugin_reference(plugin: object) -> str | None:
    """An import reference that re-creates ``plugin`` in another process, or ``None``."""
    if inspect.ismodule(plugin):
        return plugin.__name__
    module = sys.modules.get(type(plugin).__module__)
    if module is None:
        return None
    for attr, value in vars(module).items():
        if value is plugin:
            return f"{module.__name__}:{attr}"
    cls = type(plugin)
    if "<locals>" not in cls.__qualname__ and getattr(module, cls.__qualname__, None) is cls:
        try:
            inspect.signature(cls).bind()
        except (TypeError, ValueError):
            return None
        return f"{module.__name__}:{cls.__qualname__}()"
    return None


def import_reference(reference: str) -> object:
    """The object an import reference names (see :class:`PluginsSpec`)."""
    module_name, _, attr = reference.partition(":")
    module = importlib.import_module(module_name)
    if not attr:
        return module
    if attr.endswith("()"):
        return getattr(module, attr[:-2])()
    return getattr(module, attr)


OWN_DISTRIBUTION = "imgcls-harness"


def _load_order(ep: importlib.metadata.EntryPoint,
                known: dict[str, tuple[str | None, str | None]]) -> tuple[bool, str, str]:
    """Built-in plugins first, then third-party ones by distribution and entry-point name, so which
    registration of a duplicated name wins never depends on the order of ``sys.path``."""
    dist_name = _distribution_of(ep, known)[0] or ""
    return (_normalise(dist_name) != OWN_DISTRIBUTION, _normalise(dist_name), ep.name)


def _distribution_of(ep: importlib.metadata.EntryPoint,
                     known: dict[str, tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    """``(name, version)`` of the distribution that ships ``ep``. Each distribution's metadata is parsed
    once into ``known`` (each ``.metadata`` access parses the whole file again: once per entry point, that
    was a tenth of every command's start-up)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    key = str(getattr(dist, "_path", id(dist)))
    if key not in known:
        metadata = dist.metadata
        known[key] = (metadata["Name"], metadata["Version"])
    return known[key]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _call_register(impl: Any, register: Callable[[Any], None]) -> Any:
    return _call(impl, register=register)


def _call(impl: Any, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for (pluggy allows a subset)."""
    return impl.function(*(kwargs[name] for name in impl.argnames))


HOOK_NAMES = sorted(n for n in dir(hookspecs) if n.startswith(("register_", "track_")))


def load_plugins(plugins: Iterable[object] = (), *, entry_points: bool | None = None,
                 strict: bool | None = None,
                 report: Callable[[str], None] = _stderr_report) -> Plugins:
    """Build a :class:`Plugins`: entry points (unless disabled), then the plugins passed in.

    ``entry_points=None`` follows ``HARNESS_DISABLE_PLUGIN_AUTOLOAD``; ``strict=None`` follows
    ``HARNESS_STRICT_PLUGINS``. Tests call ``load_plugins([module], entry_points=False)``.
    """
    if strict is None:
        strict = _env_flag("HARNESS_STRICT_PLUGINS")
    if entry_points is None:
        entry_points = not _env_flag("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    result = Plugins(strict=strict, report=report)
    if entry_points:
        allow_env = os.environ.get("HARNESS_LOAD_PLUGINS")
        allow = None if allow_env is None else {p.strip() for p in allow_env.split(",") if p.strip()}
        result.load_entry_points(allow)
    for plugin in plugins:
        if result.add(plugin):
            result.in_code.append((default_name(plugin), plugin_reference(plugin)))
    return result


_default: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide :class:`Plugins`, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = load_plugins()
    return _default


def set_plugins(plugins: Plugins | None) -> None:
    """Replace the process-wide plugins (tests; embedding applications)."""
    global _default
    _default = plugins
