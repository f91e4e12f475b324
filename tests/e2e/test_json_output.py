"""Every command that offers ``--format json`` prints strict JSON (no NaN, no Infinity), on one
trained store; a new command with a JSON format must be added to COMMANDS below to pass."""

from __future__ import annotations

import json

import click
import pytest
from helpers import make_plugins

from harness.cli import cli

# (command path, arguments); "{model}" is the trained version, "{tmp}" a scratch folder, "{weights}"
# its stored weights file, "{photos}" a folder of images in class sub-folders, "{zoospec}" a one-model zoo
COMMANDS: list[tuple[str, tuple[str, ...]]] = [
    ("list", ("backbones", "cifar_*")),
    ("list", ("tasks",)),
    ("show", ("cifar_convnet_xs",)),
    ("show", ("synthetic",)),
    ("plugins", ()),
    ("plugins check", ("plugins.metrics",)),
    ("registry list", ()),
    ("registry show", ("{model}",)),
    ("registry import", ("cifar_convnet_s", "{weights}")),
    ("registry history", ("synthetic:production",)),
    ("gate", ("{model}", "--against", "synthetic:production")),
    ("leaderboard", ("--task", "synthetic")),
    ("evaluate", ("{model}", "--test-limit", "64")),
    ("export", ("{model}", "--out", "{tmp}/export")),
    ("check-onnx", ("{model}", "--samples", "32")),
    ("robustness", ("{model}", "--samples", "32", "--corruptions", "jpeg,contrast")),
    ("bench", ("{model}", "--rounds", "1", "--iters", "2", "--runtimes", "onnxruntime", "--batch-sizes", "1")),
    ("finetune", ("cifar_convnet_xs", "--task", "synthetic", "--epochs", "1", "--train-limit", "128",
                  "--test-limit", "64")),
    ("pretrain", ("cifar_convnet_xs", "--dataset", "synthetic", "--epochs", "1", "--train-limit", "128",
                  "--batch-size", "32")),
    ("select", ("--task", "synthetic", "--budget", "quick", "--candidates", "cifar_convnet_xs", "--epochs", "1",
                "--train-limit", "128", "--test-limit", "64")),
    ("task add", ("jsontask", "--data", "{photos}")),
    ("data check", ("{photos}",)),
    ("zoo build", ("--spec", "{zoospec}", "--quiet")),
    ("zoo list", ("json",)),
    ("study transfer", ("--task", "synthetic:classes=0-2", "--starts", "cifar_convnet_xs", "--labels", "4",
                        "--seeds", "1", "--epochs", "1", "--max-epochs", "2")),
]


def _json_commands() -> set[str]:
    ctx = click.Context(cli)
    found: set[str] = set()

    def walk(command: click.Command, path: list[str]) -> None:
        if any(p.name == "fmt" and "json" in getattr(p.type, "choices", ()) for p in command.params):
            found.add(" ".join(path))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name])

    walk(cli, [])
    return found


def test_every_json_command_is_covered():
    assert _json_commands() == {path for path, _ in COMMANDS}


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


@pytest.mark.slow
def test_every_json_output_parses_with_a_strict_parser(run_cli, trained, tmp_path):
    from fileformats import write_photos

    from registry import keys
    from registry.store import ModelStore

    with ModelStore() as store:
        weights = store.get(trained).artifacts[keys.ROLE_WEIGHTS].path
    photos = write_photos(tmp_path / "photos")
    zoospec = tmp_path / "zoo.toml"
    zoospec.write_text('name = "json"\nepochs = 1\nbatch_size = 32\ntrain_limit = 64\n[[groups]]\n'
                       'backbones = ["cifar_convnet_xs"]\nmethod = "supervised"\nsource = "synthetic"\n')
    plugins = make_plugins()  # its own: task add puts a task in the catalogue
    for path, args in COMMANDS:
        filled = [a.format(model=trained, tmp=tmp_path, weights=weights, photos=photos, zoospec=zoospec)
                  for a in args]
        result = run_cli(*path.split(), *filled, "--format", "json", plugins=plugins)
        assert result.exit_code == 0, (path, result.output[-2000:])
        json.loads(result.stdout, parse_constant=_refuse)
