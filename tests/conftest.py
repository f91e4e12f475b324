"""Fixtures shared by every test (helpers to import are in helpers.py and fileformats.py).

Lanes: ``pytest -m "not slow"`` is the fast lane (no test that trains for long); the whole suite
is the README's test command. Tests that need a trained model share ``trained`` (one fine-tune per
worker process) instead of training their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import make_plugins


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-n N``, give each worker its share of the cores: N workers each running torch's
    default (all cores) oversubscribe the CPU, and OpenMP threads then slow each other down far
    more than 1/N (the suite took 9.5 min on 2 cores that way). Subprocesses inherit the setting."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the developer's caches: data, torch hub and harness home live in tmp."""
    base = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("HARNESS_DATA", str(base / "data"))
    monkeypatch.setenv("HARNESS_HOME", str(base / "home"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    monkeypatch.setenv("HARNESS_CACHE", str(base / "cache"))
    # The timm and torchvision indexes depend only on the library's version: one copy for the whole run
    # (all workers), written atomically by whichever process needs it first, instead of an `import timm`
    # or `import torchvision` in every subprocess.
    (base / "cache").mkdir()
    for library in ("timm", "torchvision"):
        shared = tmp_path_factory.getbasetemp().parent / f"{library}-index"
        shared.mkdir(exist_ok=True)
        (base / "cache" / library).symlink_to(shared, target_is_directory=True)
    for name in ("HARNESS_LOAD_PLUGINS", "HARNESS_STRICT_PLUGINS", "HARNESS_DISABLE_PLUGIN_AUTOLOAD",
                 "HARNESS_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def builtin_plugins():
    return make_plugins()


@pytest.fixture(scope="session")
def catalogue(builtin_plugins):
    return builtin_plugins.catalogue


@pytest.fixture
def ctx(builtin_plugins, tmp_path: Path) -> Iterator:
    """A quiet library Context with the built-in plugins and a fresh store."""
    from harness.context import Context

    with Context(builtin_plugins, home=tmp_path / "home", quiet=True) as context:
        yield context


@pytest.fixture
def run_cli(builtin_plugins) -> Callable[..., object]:
    """Invoke the CLI in-process with the built-in plugins; returns click's Result."""
    from harness.cli import cli

    def run(*args: str, plugins=None):
        return CliRunner().invoke(cli, list(args), obj=plugins or builtin_plugins, catch_exceptions=False)

    return run


@pytest.fixture
def own(monkeypatch: pytest.MonkeyPatch, run_cli) -> Callable[..., object]:
    """The CLI with plugins of its own: tasks made from data, views and saved tasks join that
    catalogue, not the session's, and no --data task leaks to other tests through the environment."""
    monkeypatch.setenv("HARNESS_DATA_TASKS", "")
    plugins = make_plugins()
    return lambda *args: run_cli(*args, plugins=plugins)


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory, builtin_plugins) -> Path:
    """A store holding ``synthetic@1``: cifar_convnet_s fine-tuned one epoch on the synthetic task
    (made once per worker; tests copy the store before changing it)."""
    from harness.context import Context
    from harness.train.finetune import finetune
    from harness.train.recipe import Recipe

    home = tmp_path_factory.mktemp("trained") / "home"
    with Context(builtin_plugins, home=home, quiet=True) as context:
        finetune(context, "cifar_convnet_s", "synthetic", Recipe(epochs=1, batch_size=64, budget="quick"))
    return home


@pytest.fixture
def trained(trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``synthetic@1`` in a private copy of the shared trained store, which HARNESS_HOME points at."""
    import shutil

    home = tmp_path / "trained-home"
    shutil.copytree(trained_home, home)
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return "synthetic@1"


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env
