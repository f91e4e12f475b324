"""A plugin that calls ``sys.exit()`` (at import or in a hook) is isolated like one that raises, and
strict mode makes every problem ``harness plugins`` lists an error, a task's unknown candidate too."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import click
import pytest
from helpers import CodeNetPlugin, _build_code_net, harness_exe, make_plugins

import harness
from harness.errors import PluginError
from harness.plugins import load_plugins
from registry import Backbone, Budget, Protocol, Task


class ExitingPlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="half_net", builder=_build_code_net, head="2", input_size=8))
        raise SystemExit(3)

    @harness.hookimpl
    def register_commands(self, cli):
        import sys

        sys.exit(0)


class InterruptedPlugin:
    @harness.hookimpl
    def register_backbones(self, register):
        raise KeyboardInterrupt


def test_a_hook_calling_sys_exit_is_isolated_reported_and_fatal_when_strict():
    reports: list[str] = []
    plugins = make_plugins([CodeNetPlugin(), ExitingPlugin()], builtins=False, reports=reports)
    assert plugins.catalogue.backbones.names() == ["code_net"]
    assert any("ExitingPlugin" in r and "register_backbones raised SystemExit" in r and "sys.exit(3)" in r
               for r in reports)
    group = click.Group("harness")
    plugins.add_commands(group)  # its other hook calls sys.exit(0): its commands are left out, nothing stops
    records = {r.name: r for r in plugins.audit()}
    assert records["ExitingPlugin"].status == "partial" and records["CodeNetPlugin"].status == "loaded"
    assert any("register_commands raised SystemExit" in p for p in records["ExitingPlugin"].problems)
    with pytest.raises(PluginError, match="ExitingPlugin.*SystemExit.*HARNESS_STRICT_PLUGINS"):
        make_plugins([ExitingPlugin()], builtins=False, strict=True).catalogue.backbones.names()


def test_ctrl_c_in_a_hook_still_stops_the_command():
    plugins = make_plugins([CodeNetPlugin(), InterruptedPlugin()], builtins=False)
    with pytest.raises(KeyboardInterrupt):
        plugins.catalogue.backbones.names()


def _install(site: Path, name: str, code: str) -> None:
    """A plugin distribution ``harness-<name>`` as pip lays it out: a module and its dist-info."""
    module = f"harness_{name}"
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(code))
    info = site / f"harness_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: harness-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{name} = {module}\n")


@pytest.fixture
def exiting_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    _install(site, "quits", "import sys\nsys.exit(0)\n")
    _install(site, "fails", """
        import harness

        @harness.hookimpl
        def register_backbones(register):
            raise SystemExit(3)
    """)
    return site


def _cli(site: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*harness_exe(), *args], capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(site)})


@pytest.mark.slow  # real installed distributions, a subprocess each
def test_installed_plugins_calling_sys_exit_do_not_silence_the_cli(exiting_site, subprocess_env):
    listed = _cli(exiting_site, "list", "backbones", "resnet1*", "--format", "json", env=subprocess_env)
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["resnet101", "resnet152", "resnet18"]
    assert "plugin quits (harness-quits 0.1): failed to import harness_quits: SystemExit" in listed.stderr
    assert "plugin fails (harness-fails 0.1): register_backbones raised SystemExit" in listed.stderr

    checked = _cli(exiting_site, "plugins", "--check", "--format", "json", env=subprocess_env)
    assert checked.returncode == 1, checked.stderr
    rows = {r["name"]: r for r in json.loads(checked.stdout)}
    assert rows["quits"]["status"] == "failed" and "sys.exit(0)" in rows["quits"]["error"]
    assert rows["fails"]["status"] == "partial" and "sys.exit(3)" in rows["fails"]["problems"][0]
    assert rows["builtin_metrics"]["status"] == "loaded"
    assert "2 plugin(s) with problems: fails, quits" in checked.stderr

    strict = _cli(exiting_site, "plugins", env={**subprocess_env, "HARNESS_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "harness_quits: SystemExit" in strict.stderr and "HARNESS_STRICT_PLUGINS is set" in strict.stderr


def test_an_entry_point_calling_sys_exit_at_import_is_a_failed_plugin(exiting_site, monkeypatch):
    monkeypatch.syspath_prepend(str(exiting_site))
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "quits,builtin_metrics")
    reports: list[str] = []
    plugins = load_plugins(report=reports.append)
    assert plugins.records["quits"].status == "failed" and "sys.exit(0)" in str(plugins.records["quits"].error)
    assert plugins.records["builtin_metrics"].status == "loaded" and "accuracy" in plugins.catalogue.metrics
    assert any(r.startswith("plugin quits (harness-quits 0.1): failed to import") for r in reports)
    with pytest.raises(PluginError, match="harness_quits: SystemExit"):
        load_plugins(strict=True)


class UnknownCandidatePlugin:
    @harness.hookimpl
    def register_tasks(self, register):
        budgets = {b: Budget(epochs=1, batch_size=8, lr=0.01) for b in ("quick", "standard", "full")}
        register(Task(name="odd-task", dataset="synthetic", metrics=("accuracy",),
                      protocol=Protocol(input_size=32, budgets=budgets, candidates=("no_such_net",))))


def test_strict_mode_makes_a_task_naming_an_unknown_candidate_an_error(run_cli):
    plugins = make_plugins([UnknownCandidatePlugin()])
    records = {r.name: r for r in plugins.audit()}
    assert records["UnknownCandidatePlugin"].status == "partial"
    assert "names candidate 'no_such_net'" in records["UnknownCandidatePlugin"].problems[0]
    strict = make_plugins([UnknownCandidatePlugin()], strict=True)
    with pytest.raises(PluginError, match="no_such_net.*HARNESS_STRICT_PLUGINS is set"):
        strict.audit()
    result = run_cli("plugins", plugins=strict)
    assert result.exit_code == 2 and "names candidate 'no_such_net'" in result.output
