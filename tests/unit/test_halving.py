"""select --time-limit: durations and the rung schedule."""

from __future__ import annotations

import pytest

from harness.select.halving import parse_duration, rung_epochs
from registry import UsageError


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), (" 2M ", 120),
                                         ("1h30m", 5400), ("2m30s", 150), ("1h 5s", 3605), (".5m", 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "ten minutes", "-5m", "0", "nanm", "infs", "30m1h", "1m1m", "90 1m",
                                  "1h30", "1e3s", "1.2.3m",
                                  "\uff11h", "\u0663h"])
def test_bad_durations_name_the_flag_and_the_form(text):
    with pytest.raises(UsageError, match="is not a duration; use e.g. 90s"):
        parse_duration(text)


@pytest.mark.parametrize("epochs,rungs", [(1, [1]), (2, [1, 2]), (3, [1, 3]), (9, [1, 3, 9]), (10, [1, 3, 10]),
                                          (30, [1, 3, 10, 30]), (27, [1, 3, 9, 27])])
def test_rungs_grow_by_three_and_end_at_the_recipe_epochs(epochs, rungs):
    assert rung_epochs(epochs) == rungs


def test_executor_ray_without_ray_names_the_extra(monkeypatch):
    import sys

    from harness.select.ray_executor import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the extra looks like
    with pytest.raises(UsageError, match=r"pip install 'imgcls-harness\[ray\]'"):
        require_ray()


def test_a_limit_over_a_year_is_a_typo():
    with pytest.raises(UsageError, match="longer than a year"):
        parse_duration("99999999999999999999h")
    assert parse_duration("8760h") == 8760 * 3600
