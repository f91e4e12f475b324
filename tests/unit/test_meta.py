"""Meta-tests: every hook is documented (docstring and README, exact signature) and tested."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from helpers import ROOT

from harness import hookspecs
from harness.plugins import HOOK_NAMES

README = (ROOT / "README.md").read_text()
TESTS = {p: p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_meta.py"}


def test_hook_list_is_not_empty():
    assert HOOK_NAMES == ["register_backbones", "register_commands", "register_datasets",
                          "register_metrics", "register_tasks", "track_artifact", "track_epoch_ended",
                          "track_names", "track_run_finished", "track_run_started", "track_select_finished"]


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_docstring_says_when_arguments_and_return(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "Called:" in doc and ":param" in doc and "Return" in doc, name


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_is_documented_in_readme_with_exact_signature(name):
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"{name}({params})" in README, f"README lacks `{name}({params})`"


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_hook_has_a_test(name):
    users = [p.name for p, text in TESTS.items() if f"def {name}(" in text or f'"{name}"' in text]
    assert users, f"no test implements or checks {name}"


def test_builtin_plugins_are_entry_points_not_imports():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for module in sorted(Path(ROOT / "plugins").glob("*.py")):
        text = module.read_text()
        if "@harness.hookimpl" in text:
            assert f'"plugins.{module.stem}"' in pyproject, f"{module.name} is not an entry point"


def test_readme_plugin_example_works():
    """The plugin author's guide's complete example, run as a real plugin (strict mode)."""
    import re
    import types

    from click.testing import CliRunner

    from harness.cli.app import RootGroup, cli
    from harness.context import Context
    from harness.data import load_split
    from harness.models import build_model
    from harness.plugins import load_plugins

    code = re.search(r"```python\n(# harness_yourthing/__init__.py\n.*?)```", README, re.S).group(1)
    module = types.ModuleType("harness_yourthing")
    exec(compile(code, "README.md", "exec"), module.__dict__)
    plugins = load_plugins([module], entry_points=False, strict=True)
    cat = plugins.catalogue
    split = load_split(Context(plugins), "darklight", "train")
    model = build_model(cat, "mynet_s", num_classes=2)
    logits = model(split.images.float() / 255)
    assert logits.shape == (64, 2)
    assert cat.metrics.get("error_rate").compute(logits, split.labels, 2) <= 1.0
    assert cat.tasks.get("darklight").protocol.candidates == ("mynet_s",)
    group = RootGroup(name="harness", params=cli.params, callback=cli.callback)
    assert CliRunner().invoke(group, ["darklight-info"], obj=plugins).output.strip() == "dark or light?"


def _readme_command_rows() -> list[tuple[list[str], list[str]]]:
    """(command words, flags) for each row of the README's command table."""
    import re

    rows = []
    for line in README.splitlines():
        match = re.match(r"\| `harness ([^`]*)`", line)
        if not match:
            continue
        usage = match.group(1)
        words = []
        for word in usage.split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        rows.append((words, sorted(set(re.findall(r"--[a-z][a-z0-9-]*", usage)))))
    return rows


@pytest.mark.parametrize(("words", "flags"), _readme_command_rows(), ids=lambda v: " ".join(v) or "-")
def test_readme_command_table_matches_the_cli(run_cli, words, flags):
    """Keeps the README true: every command and flag it documents exists."""
    result = run_cli(*words, "--help")
    assert result.exit_code == 0, result.output
    missing = [f for f in flags if f not in result.output]
    assert not missing, f"README documents {missing} for 'harness {' '.join(words)}'"


def _readme_example_commands() -> list[str]:
    """Every ``harness ...`` command line in the README's bash blocks (comments and ``&&`` split off)."""
    commands, in_bash = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if in_bash:
            for part in line.split("#")[0].split("&&"):
                part = part.strip()
                if part.startswith(("harness ", ".venv/bin/harness ")):
                    commands.append(part.removeprefix(".venv/bin/"))
    return commands


@pytest.mark.parametrize("command", _readme_example_commands())
def test_readme_examples_use_real_commands_and_flags(run_cli, command):
    import re
    import shlex

    words = []
    for word in shlex.split(command)[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    result = run_cli(*words, "--help")
    assert result.exit_code == 0, result.output
    missing = [f for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command) if f not in result.output]
    assert not missing, f"{command!r}: no {missing} in 'harness {' '.join(words)} --help'"


def test_ci_runs_the_readme_lint_and_test_commands_exactly():
    """CI checks what a contributor is told to run, in the same words."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    at = []
    for command in (".venv/bin/ruff check . && .venv/bin/mypy", ".venv/bin/python -m pytest -n 2 --dist worksteal"):
        assert f"```bash\n{command}\n```" in README, f"README lacks the command {command!r}"
        lines = [i for i, line in enumerate(ci) if line == command or line.startswith(command + " || exit")]
        assert lines, f".ci/run does not run {command!r}"
        at.append(lines[0])
    assert at == sorted(at)  # lint first
