"""Every float option of every command refuses ``nan`` and ``inf`` (which pass a range check, since
comparisons with NaN are false) with one line and exit 2, before any work; the library's recipe too."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.cli.options import FiniteFloat
from registry import UsageError


def _commands(command: click.Command, ctx: click.Context, path: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """``command`` and, through groups, every command below it, with the words that invoke each."""
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                yield from _commands(sub, click.Context(sub, parent=ctx, info_name=name, obj=ctx.obj), (*path, name))


def _float_params(plugins) -> list[tuple[tuple[str, ...], click.Parameter]]:
    root = click.Context(cli, info_name="harness", obj=plugins)
    return [(path, param) for path, command in _commands(cli, root) for param in command.params
            if isinstance(param.type, click.types.FloatParamType)]


def test_the_walk_finds_the_float_options(builtin_plugins):
    found = {(" ".join(path), param.name) for path, param in _float_params(builtin_plugins)}
    assert {("check-onnx", "atol"), ("finetune", "lr"), ("select", "lr"), ("gate", "min_delta"),
            ("zoo build", "cpus_per_trial"), ("data check", "test_fraction")} <= found
    assert len(found) >= 30


def test_every_float_option_refuses_nan_and_inf_before_any_work(builtin_plugins):
    home = Path(os.environ["HARNESS_HOME"])
    for path, param in _float_params(builtin_plugins):
        where = f"harness {' '.join(path)} {param.opts[0]}"
        assert isinstance(param, click.Option), f"{where}: a float argument; make it an option"
        assert isinstance(param.type, FiniteFloat), f"{where}: use harness.cli.options.FiniteFloat"
        for value in ("nan", "inf", "-inf", "NaN"):
            # the option first: click converts parameters in the order they were typed, so nothing
            # else (a missing argument) can answer before it
            args = [*path, param.opts[0], *[value] * param.nargs]
            result = CliRunner().invoke(cli, args, obj=builtin_plugins)
            assert result.exit_code == 2, f"{where} {value}: exit {result.exit_code}: {result.output}"
            message = result.output.strip()
            assert message == (f"Error: Invalid value for '{param.opts[0]}': {value} is not a finite number; "
                               f"see 'harness {' '.join(path)} --help'"), message
    assert not home.exists()  # no command got as far as opening the store


def test_finite_float_keeps_its_range():
    atol = FiniteFloat(min=0)
    assert atol.convert("1e-3", None, None) == 1e-3
    with pytest.raises(click.BadParameter, match="-1.0 is not in the range x>=0"):
        atol.convert("-1", None, None)
    with pytest.raises(click.BadParameter, match="'abc' is not a valid float"):
        atol.convert("abc", None, None)
    with pytest.raises(click.BadParameter, match="nan is not a finite number"):
        FiniteFloat(0, 1).convert(float("nan"), None, None)


@pytest.mark.parametrize("field", ["lr", "momentum", "weight_decay", "warmup_epochs", "backbone_lr_mult",
                                   "label_smoothing", "val_fraction"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_recipe_refuses_a_number_that_is_not_finite(field, value):
    from harness.train.recipe import Recipe

    with pytest.raises(UsageError, match=f"^{field} must be a finite number") as caught:
        Recipe(**{field: value})
    assert caught.value.param == field


def test_the_api_refuses_a_nan_lr_before_training(builtin_plugins):
    from harness import api
    from harness.context import Context

    with Context(builtin_plugins, quiet=True) as ctx, pytest.raises(UsageError, match="lr must be a finite number"):
        api.finetune("cifar_convnet_xs", "synthetic", lr=float("nan"), ctx=ctx)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_library_limits_refuse_numbers_that_are_not_finite(value):
    """What the CLI's FiniteFloat refuses, the Python API refuses too (a notebook passes floats)."""
    from harness.evaluate.int8 import Int8Policy
    from harness.select.config import Constraints

    for param in ("max_latency_ms", "max_params", "max_size_mb"):
        with pytest.raises(UsageError, match=param):
            Constraints(**{param: value})
    with pytest.raises(UsageError, match="int8_max_drop"):
        Int8Policy(max_drop_points=value)
    with pytest.raises(UsageError, match="int8_min_speedup"):
        Int8Policy(min_speedup=value)


@pytest.mark.parametrize("param", ["atol", "rtol"])
def test_parity_refuses_a_tolerance_that_is_not_finite_before_any_work(ctx, param):
    from harness.onnx.parity import check_parity

    with pytest.raises(UsageError, match=param):
        check_parity(ctx, "no-such-model", **{param: math.nan})  # refused before the model is looked up


def test_the_cli_input_size_range_is_the_weights_files_range():
    from harness.cli.options import INPUT_SIZE
    from harness.models.weights import MAX_INPUT_SIZE, MIN_INPUT_SIZE

    assert (INPUT_SIZE.min, INPUT_SIZE.max) == (MIN_INPUT_SIZE, MAX_INPUT_SIZE)
