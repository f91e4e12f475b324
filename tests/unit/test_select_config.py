"""One constructor for a selection's config: ``harness select`` and ``harness.select_models`` both build it
with ``SelectConfig.from_options``, so a flag and a keyword cannot drift apart (issue 26)."""

from __future__ import annotations

import inspect

import pytest

from harness.api import select as api_select
from harness.cli.options import data_spec
from harness.cli.select_cmds import CONTEXT_FLAGS, EXECUTOR_FLAGS, RECIPE_FLAGS, select_command, select_config
from harness.evaluate.int8 import Int8Policy
from harness.select.config import Constraints, SelectConfig
from registry import UsageError

CLI_ONLY = {"task_name", "fmt", "plot_path", "report_path", "wide", "columns", "data_uri", "test_fraction",
            "image_column", "label_column", "label_depth", *EXECUTOR_FLAGS, *CONTEXT_FLAGS}
API_ONLY = {"task", "data", "executor", "ctx", "recipe"}


def _cli_config(*args: str) -> SelectConfig:
    """What ``harness select ARGS`` builds, parsed by click and turned into a config as the command does."""
    options = dict(select_command.make_context("select", ["--task", "synthetic", *args]).params)
    data_spec(options)
    for key in (*EXECUTOR_FLAGS, *CONTEXT_FLAGS, *CLI_ONLY & set(options)):
        options.pop(key, None)
    return select_config(options)


def test_the_command_and_the_api_build_the_same_config():
    args = ["--candidates", "a,b", "--time-limit", "90s", "--epochs", "2", "--max-params", "1e6", "--prefer",
            "fastest", "--no-cache", "--int8", "--int8-max-drop", "0.5", "--no-robustness", "--threads", "2"]
    expected = SelectConfig.from_options("", candidates=["a", "b"], time_limit=90, max_params=1e6, prefer="fastest",
                                         use_cache=False, int8=True, int8_max_drop=0.5, robustness=False, threads=2,
                                         recipe={"epochs": 2, "lr": None})
    assert _cli_config(*args) == expected
    assert expected.candidates == ("a", "b") and expected.time_limit_s == 90.0 and expected.recipe == {"epochs": 2}
    assert expected.constraints == Constraints(max_params=1e6) and expected.int8 == Int8Policy(max_drop_points=0.5)


def test_every_flag_of_select_is_a_keyword_of_the_api_and_back():
    flags = {p.name for p in select_command.params} - CLI_ONLY - set(RECIPE_FLAGS)
    flags = flags - {"no_cache"} | {"use_cache"}
    keywords = set(inspect.signature(api_select).parameters) - API_ONLY
    assert flags == keywords


@pytest.mark.parametrize(("options", "message"), [
    ({"recipe": {"epoch": 2}}, "unknown recipe override 'epoch'"),
    ({"seed": 3}, "unknown selection option 'seed'"),
    ({"int8_min_speedup": 1.5}, "int8_min_speedup applies to int8: add it"),
    ({"time_limit": "soon"}, "time_limit 'soon' is not a duration"),
    ({"time_limit": "10m", "seeds": 2}, "time_limit must be positive and works with one seed (seeds 1)"),
])
def test_bad_options_are_refused_naming_the_keyword(options, message):
    with pytest.raises(UsageError) as info:
        SelectConfig.from_options("synthetic", **options)
    assert str(info.value).startswith(message)


def test_the_cli_names_the_same_parameters_by_their_flags(run_cli):
    result = run_cli("select", "--task", "synthetic", "--time-limit", "10m", "--seeds", "2")
    assert result.exit_code == 2
    assert "Error: --time-limit must be positive and works with one seed (--seeds 1)" in result.output
    result = run_cli("select", "--task", "synthetic", "--int8-max-drop", "2")
    assert result.exit_code == 2 and "Error: --int8-max-drop applies to --int8: add it" in result.output
