"""A real plugin package, installed with pip, shows up and works; a broken one is isolated.

The packages are installed with ``pip install --target`` into a temporary folder put on
PYTHONPATH, so the test exercises real entry-point discovery without touching the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, harness_exe

EXAMPLE = ROOT / "examples" / "harness-tiny"


def _pip_install(source: Path, target: Path) -> None:
    """Build from a clean copy: setuptools leaves build/ in the source tree, which breaks rebuilds."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                               "--no-build-isolation", "--target", str(target), str(copy)],
                              capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _write_broken_package(folder: Path) -> Path:
    (folder / "harness_broken").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "harness-broken"
        version = "0.0.1"
        [project.entry-points.harness]
        broken = "harness_broken"
        [tool.setuptools]
        packages = ["harness_broken"]
    """))
    (folder / "harness_broken" / "__init__.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    _pip_install(EXAMPLE, target)
    _pip_install(_write_broken_package(tmp_path_factory.mktemp("broken")), target)
    return target


def _run(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run([*harness_exe(), *args], capture_output=True, text=True, env=environ)


def test_installed_plugin_is_listed_with_its_distribution(site):
    proc = _run(site, "plugins", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["tiny"]["distribution"] == "harness-tiny" and rows["tiny"]["version"] == "0.1.0"
    assert rows["tiny"]["status"] == "loaded"
    assert set(rows["tiny"]["hooks"]) == {"register_backbones", "register_datasets", "register_metrics",
                                          "register_tasks", "register_commands"}
    assert rows["broken"]["status"] == "failed" and "broken on purpose" in rows["broken"]["error"]


def test_broken_plugin_is_reported_and_the_rest_work(site):
    proc = _run(site, "list", "backbones", "tiny*", "--format", "json")
    assert proc.returncode == 0
    assert [r["name"] for r in json.loads(proc.stdout)] == ["tinynet_xs"]
    assert "broken" in proc.stderr and "harness-broken 0.0.1" in proc.stderr
    assert "RuntimeError: this plugin is broken on purpose" in proc.stderr


def test_strict_mode_turns_a_broken_plugin_into_exit_2(site):
    proc = _run(site, "list", "metrics", HARNESS_STRICT_PLUGINS="1")
    assert proc.returncode == 2 and "broken on purpose" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_allow_list_excludes_the_broken_plugin(site):
    proc = _run(site, "list", "tasks", "--format", "json", HARNESS_LOAD_PLUGINS="tiny,imgcls-harness")
    assert proc.returncode == 0 and proc.stderr == ""
    assert "checkers" in {r["name"] for r in json.loads(proc.stdout)}


def test_plugin_command_runs(site):
    proc = _run(site, "tiny-hello", "plugin-author")
    assert proc.returncode == 0 and proc.stdout.strip() == "hello from harness-tiny, plugin-author"


@pytest.mark.slow
def test_plugin_backbone_dataset_metric_task_work_together(site):
    script = textwrap.dedent("""
        import json, torch
        from harness import Context, load_plugins
        from harness.models import build_model
        from harness.data import load_split
        ctx = Context(load_plugins(report=lambda m: None))
        cat = ctx.catalogue
        task = cat.tasks.get("checkers")
        data = load_split(ctx, task.dataset, "test")
        model = build_model(cat, "tinynet_xs", num_classes=2).eval()
        with torch.no_grad():
            logits = model(data.images.float() / 255)
        values = {m: cat.metrics.get(m).compute(logits, data.labels, 2) for m in task.metrics}
        print(json.dumps({"n": len(data), "values": values,
                          "direction": cat.metrics.get("error_rate").higher_is_better}))
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["n"] == 32 and out["direction"] is False
    assert out["values"]["accuracy"] + out["values"]["error_rate"] == pytest.approx(1.0)


@pytest.mark.slow
def test_conformance_kit_from_the_cli_and_as_the_example_packages_own_test(site, tmp_path):
    proc = _run(site, "plugins", "check", "harness-tiny", "--data-dir", str(tmp_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["name"] for r in rows} == {"tinynet_xs", "checkers", "error_rate"} and all(r["ok"] for r in rows)
    assert {r["plugin"] for r in rows} == {"tiny"}  # the entry-point name; the distribution matched
    assert "checks passed" in proc.stderr
    broken = _run(site, "plugins", "check", "harness-broken")
    assert broken.returncode == 2 and "no entries registered by 'harness-broken'" in broken.stderr
    # the example's tests/test_conformance.py, run as its author would, against the installed package
    tests = ROOT / "examples" / "harness-tiny" / "tests"
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "--rootdir", str(tests), str(tests)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def _write_clumsy_package(folder: Path) -> Path:
    """An installed plugin with the contract's loose ends of issue 27: a command hook that raises, a
    command named like a built-in, a task whose candidate is a typo."""
    (folder / "harness_clumsy").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "harness-clumsy"
        version = "0.0.2"
        [project.entry-points.harness]
        clumsy = "harness_clumsy"
        clumsy_commands = "harness_clumsy.commands"
        [tool.setuptools]
        packages = ["harness_clumsy"]
    """))
    (folder / "harness_clumsy" / "__init__.py").write_text(textwrap.dedent("""
        import harness
        from registry import Budget, Protocol, Task

        @harness.hookimpl
        def register_tasks(register):
            budgets = {b: Budget(epochs=1) for b in ("quick", "standard", "full")}
            register(Task(name="clumsy", dataset="synthetic", metrics=("accuracy",),
                          protocol=Protocol(input_size=32, budgets=budgets, candidates=("cifar_resnet_20",))))

        @harness.hookimpl
        def register_commands(cli):
            raise RuntimeError("clumsy commands are broken")
    """))
    (folder / "harness_clumsy" / "commands.py").write_text(textwrap.dedent("""
        import harness

        @harness.hookimpl
        def register_commands(cli):
            @cli.command(name="export")
            def export():
                print("not harness's export")
    """))
    return folder


@pytest.fixture(scope="module")
def clumsy_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("clumsy-site")
    _pip_install(_write_clumsy_package(tmp_path_factory.mktemp("clumsy")), target)
    return target


def test_plugins_check_names_an_installed_plugins_command_and_candidate_mistakes(clumsy_site):
    checked = _run(clumsy_site, "plugins", "--check", "--format", "json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    rows = {r["name"]: r for r in json.loads(checked.stdout)}
    problems = " | ".join(rows["clumsy"]["problems"])
    assert rows["clumsy"]["status"] == "partial" and "register_commands raised RuntimeError" in problems
    assert "task 'clumsy' (plugin 'clumsy' (harness-clumsy 0.0.2)) names candidate 'cifar_resnet_20'" in problems
    assert "did you mean 'cifar_resnet20'" in problems
    assert rows["clumsy_commands"]["problems"] == ["command 'export' is already taken"]
    assert "plugin(s) with problems: clumsy, clumsy_commands" in checked.stderr
    select = _run(clumsy_site, "select", "--task", "clumsy")
    assert select.returncode == 2 and "Traceback" not in select.stderr
    said = "Error: task 'clumsy' (plugin 'clumsy' (harness-clumsy 0.0.2)) names candidate 'cifar_resnet_20'"
    assert said in select.stderr
