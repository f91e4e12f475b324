"""The plugin manager: isolation of broken plugins, strict mode, allow-list, check_pending, commands."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers import make_plugins

import harness
from harness.errors import DuplicateNameError, PluginError
from harness.plugins import load_plugins
from registry import Backbone, Dataset, Family, Metric


def _build(num_classes, weights):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))


class GoodPlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="good_net", builder=_build, head="1", input_size=8))

    @harness.hookimpl
    def register_metrics(self, register):
        register(Metric(name="always_one", kind="quality", higher_is_better=True, unit="fraction",
                        compute=lambda logits, targets, n: 1.0))


class MisspelledPlugin:
    @harness.hookimpl
    def register_backbone(self, register):  # missing the "s"
        register(Backbone(name="typo_net", builder=_build, head="1"))


class RaisingPlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="half_net", builder=_build, head="1"))
        raise RuntimeError("boom")


class DuplicatePlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="good_net", builder=_build, head="1"))


class WrongTypePlugin:
    @harness.hookimpl
    def register_datasets(self, register):
        register({"name": "not-a-dataset"})


class CommandPlugin:
    @harness.hookimpl
    def register_commands(self, cli):
        import click

        @cli.command(name="hello-plugin")
        def hello():
            click.echo("hello from a plugin command")

        @cli.command(name="list")
        def hijack():
            click.echo("should never replace the built-in list")


def test_misspelled_hook_is_reported_with_suggestion_and_isolated():
    reports: list[str] = []
    plugins = make_plugins([GoodPlugin(), MisspelledPlugin()], builtins=False, reports=reports)
    assert plugins.records["MisspelledPlugin"].status == "failed"
    assert "register_backbone" in reports[0] and "did you mean 'register_backbones'" in reports[0]
    assert plugins.catalogue.backbones.names() == ["good_net"]


def test_misspelled_hook_is_an_error_in_strict_mode():
    with pytest.raises(PluginError, match="unknown hook 'register_backbone'"):
        make_plugins([MisspelledPlugin()], builtins=False, strict=True)


def test_hook_that_raises_registers_nothing_and_others_survive():
    reports: list[str] = []
    plugins = make_plugins([GoodPlugin(), RaisingPlugin()], builtins=False, reports=reports)
    assert plugins.catalogue.backbones.names() == ["good_net"]
    assert any("RaisingPlugin" in r and "boom" in r and "other hooks stay active" in r for r in reports)
    assert plugins.records["RaisingPlugin"].status == "partial"
    assert not any("it was not loaded" in r for r in reports)


def test_hook_that_raises_is_fatal_when_strict():
    plugins = make_plugins([RaisingPlugin()], builtins=False, strict=True)
    with pytest.raises(PluginError, match="boom"):
        plugins.catalogue.backbones.names()


def test_duplicate_name_first_registration_wins_and_the_later_plugin_is_reported():
    reports: list[str] = []
    plugins = make_plugins([GoodPlugin(), DuplicatePlugin()], builtins=False, reports=reports)
    assert plugins.catalogue.backbones.names() == ["good_net"]
    assert plugins.catalogue.backbones.get("good_net").plugin.name == "GoodPlugin"
    assert plugins.catalogue.metrics.names() == ["always_one"]  # the other kinds keep working
    assert any("DuplicatePlugin" in r and "already registered by plugin 'GoodPlugin'" in r
               and "first registration wins" in r for r in reports)
    assert plugins.records["DuplicatePlugin"].status == "partial"
    assert plugins.records["GoodPlugin"].status == "loaded"


def test_duplicate_name_is_fatal_when_strict_naming_both():
    plugins = make_plugins([GoodPlugin(), DuplicatePlugin()], builtins=False, strict=True)
    with pytest.raises(DuplicateNameError, match="GoodPlugin.*DuplicatePlugin"):
        plugins.catalogue.backbones.names()


class UnmarkedPlugin:
    def register_backbones(self, register):  # no @harness.hookimpl
        register(Backbone(name="unmarked_net", builder=_build, head="1"))


class ReturningPlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        return [Backbone(name="returned_net", builder=_build, head="1")]


def test_a_hook_without_the_marker_is_reported():
    reports: list[str] = []
    plugins = make_plugins([UnmarkedPlugin()], builtins=False, reports=reports)
    assert "register_backbones is not marked with @harness.hookimpl" in reports[0]
    assert plugins.records["UnmarkedPlugin"].status == "partial"
    with pytest.raises(PluginError, match="not marked with @harness.hookimpl"):
        make_plugins([UnmarkedPlugin()], builtins=False, strict=True)


def test_a_hook_returning_entries_instead_of_registering_is_reported():
    reports: list[str] = []
    plugins = make_plugins([ReturningPlugin()], builtins=False, reports=reports)
    assert plugins.catalogue.backbones.names() == []
    assert "returned a list instead of calling register(entry)" in reports[0]


def test_audit_reports_entries_and_problems_per_plugin():
    plugins = make_plugins([GoodPlugin(), DuplicatePlugin(), RaisingPlugin(), ReturningPlugin()], builtins=False)
    records = {r.name: r for r in plugins.audit()}
    assert records["GoodPlugin"].entries == {"backbone": 1, "metric": 1}
    assert records["GoodPlugin"].status == "loaded" and not records["GoodPlugin"].problems
    assert records["DuplicatePlugin"].entries["backbone"] == 0
    assert "already registered" in records["DuplicatePlugin"].problems[0]
    assert "raised RuntimeError: boom" in records["RaisingPlugin"].problems[0]
    assert records["ReturningPlugin"].status == "partial"


def test_wrong_entry_type_is_reported():
    reports: list[str] = []
    plugins = make_plugins([WrongTypePlugin()], builtins=False, reports=reports)
    assert plugins.catalogue.datasets.names() == []
    assert "pass a registry.Dataset" in reports[0]


def test_entries_record_the_registering_plugin(catalogue):
    entry = catalogue.backbones.get("resnet18")
    assert entry.plugin.name == "plugins.torchvision_backbones"
    assert catalogue.metrics.get("accuracy").plugin.name == "plugins.metrics"


def test_register_commands_adds_but_cannot_replace(builtin_plugins):
    from harness.cli.app import RootGroup, cli
    from harness.cli.catalogue_cmds import list_command

    group = RootGroup(name="harness", params=cli.params, callback=cli.callback)
    reports: list[str] = []
    plugins = make_plugins([CommandPlugin()], builtins=False, reports=reports)
    result = CliRunner().invoke(group, ["hello-plugin"], obj=plugins)
    assert result.output.strip() == "hello from a plugin command"
    assert "list" not in group.commands and group.get_command(None, "list") is list_command
    assert any("'list' is already taken" in r for r in reports)


def test_entry_point_autoload_finds_builtins_and_allow_list(monkeypatch):
    plugins = load_plugins()
    loaded = {n for n, r in plugins.records.items() if r.status == "loaded"}
    assert {"torchvision_backbones", "builtin_datasets", "builtin_metrics"} <= loaded
    assert plugins.records["builtin_metrics"].distribution == harness.DISTRIBUTION

    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "builtin_metrics")
    only = load_plugins()
    assert [n for n, r in only.records.items() if r.status == "loaded"] == ["builtin_metrics"]
    assert only.records["builtin_datasets"].status == "skipped"
    assert only.catalogue.datasets.names() == []

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert load_plugins().records == {}


def test_hookimpl_with_fewer_arguments_is_called():
    class NoArgs:
        @harness.hookimpl
        def register_datasets(self):
            self.called = True

    plugin = NoArgs()
    make_plugins([plugin], builtins=False).catalogue.datasets.names()
    assert plugin.called


def test_plugin_can_register_each_kind_and_lazy_fill_per_kind():
    calls: list[str] = []

    class Counting:
        @harness.hookimpl
        def register_datasets(self, register):
            calls.append("datasets")
            register(Dataset(name="tiny", loader=lambda *a, **k: None, num_classes=2))

        @harness.hookimpl
        def register_backbones(self, register):
            calls.append("backbones")

    plugins = make_plugins([Counting()], builtins=False)
    assert plugins.catalogue.datasets.names() == ["tiny"]
    assert calls == ["datasets"]


class FamilyPlugin:
    """A zoo registered as a deferred family (like timm's): filled only when one of its names is asked for."""

    fills = 0

    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="zoo", builder=_build, head="1", input_size=8))  # clashes once the family fills
        register(Family(prefix="zoo_", fill=self._fill))

    def _fill(self, register):
        type(self).fills += 1
        register(Backbone(name="zoo_small", builder=_build, head="1", input_size=8))
        register(Backbone(name="good_net", builder=_build, head="1", input_size=8))  # taken by GoodPlugin


class BrokenFamilyPlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        register(Family(prefix="broken_", fill=self._fill))

    @staticmethod
    def _fill(register):
        raise ImportError("No module named 'zoo_library'")


def test_a_family_fills_only_for_its_names_and_its_problems_stay_its_own():
    reports: list[str] = []
    FamilyPlugin.fills = 0
    plugins = make_plugins([GoodPlugin(), FamilyPlugin(), BrokenFamilyPlugin()], builtins=False, reports=reports)
    backbones = plugins.catalogue.backbones
    assert backbones.get("good_net").name == "good_net" and "zoo" in backbones
    assert [b.name for b in backbones.list("good*")] == ["good_net"]
    good = [b.name for b in backbones.list(plugin=lambda info: info is not None and info.name == "GoodPlugin")]
    assert good == ["good_net"]  # every entry of one plugin: another plugin's family stays unfilled
    assert FamilyPlugin.fills == 0 and not reports  # nothing asked for zoo_* yet
    assert backbones.get("zoo/small").name == "zoo_small"  # the zoo/ spelling of zoo_
    assert FamilyPlugin.fills == 1 and str(backbones.get("zoo_small").plugin).startswith("plugin 'FamilyPlugin'")
    assert any("'good_net' is already registered by plugin 'GoodPlugin'" in r for r in reports)
    assert [b.name for b in backbones.list("zoo*")] == ["zoo", "zoo_small"]
    assert backbones.names() == ["good_net", "zoo", "zoo_small"]  # listing all: the broken family left out
    assert FamilyPlugin.fills == 1
    assert any("BrokenFamilyPlugin" in r and "No module named 'zoo_library'" in r for r in reports)


def test_family_prefix_and_cover_rules():
    from registry import EntryError

    family = Family(prefix="timm_", fill=lambda register: None)
    assert family.covers("timm_resnet50") and family.covers("timm_*") and family.covers("t*")
    assert family.covers("*") and not family.covers("resnet*") and not family.covers("tim")
    with pytest.raises(EntryError, match="prefix"):
        Family(prefix="Timm/", fill=lambda register: None)
    with pytest.raises(EntryError, match="one of the two"):
        Family(prefix="timm_")
