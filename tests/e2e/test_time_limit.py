"""select --time-limit: successive halving on generated data, serial and on Ray."""

from __future__ import annotations

import json

import pytest

from registry import keys
from registry.store import ModelStore

pytestmark = pytest.mark.slow

CANDIDATES = "cifar_convnet_xs,cifar_resnet8,cifar_convnet_s,cifar_resnet20"
ARGS = ("select", "--task", "synthetic", "--candidates", CANDIDATES, "--epochs", "9", "--train-limit", "200",
        "--format", "json")


def _rows(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {r["candidate"]: r for r in json.loads(result.stdout)["rows"]}


def test_halving_promotes_the_best_by_validation_and_chains_the_rungs(run_cli):
    rows = _rows(run_cli(*ARGS, "--time-limit", "10m"))
    rungs = sorted(r["rung"] for r in rows.values())
    # 4 -> the best third rounded down (1), which, alone, skips rung 2 and trains on to the last
    assert rungs == ["1/3 (1 ep)", "1/3 (1 ep)", "1/3 (1 ep)", "3/3 (9 ep)"]
    with ModelStore() as store:
        finalist = store.get(next(r["model"] for r in rows.values() if r["rung"].startswith("3/3")))
        chain = [v for v in store.lineage(finalist.ref) if keys.HALVING in v.metrics]
        assert [v.metrics[keys.HALVING]["rung"] for v in chain] == [3, 1]  # continued from its own rung 1
        assert finalist.metrics[keys.HALVING]["from_epochs"] == 1 and finalist.recipe["epochs"] == 8
        others = [store.get(r["model"]) for r in rows.values() if r["rung"].startswith("1/3")]
        assert all(v.metrics["val"]["accuracy"] <= chain[-1].metrics["val"]["accuracy"]
                   for v in others)  # rung 1's best by validation went on
    # rung models carry a fingerprint of their own: a run without halving never takes them as full runs
    assert all(f"-rung{r['rung'][0]}of3" in r["fingerprint"] for r in rows.values())
    assert [r["fingerprint"].endswith("-rung3of3-from1") for r in rows.values()].count(True) == 1


def test_halving_without_a_limit_reruns_from_the_store(run_cli):
    args = ("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs,cifar_resnet8", "--epochs", "3",
            "--train-limit", "200", "--format", "json", "--halving")
    first = _rows(run_cli(*args))
    assert sorted(r["rung"] for r in first.values()) == ["1/2 (1 ep)", "2/2 (3 ep)"]
    again = run_cli(*args)
    rows = _rows(again)
    assert {r["model"] for r in rows.values()} == {r["model"] for r in first.values()}  # no rung trained again
    assert all(r["status"] == "cached" for r in rows.values())
    assert "rung 1/2 cached as" in again.stderr


def test_a_limit_spent_by_the_first_rung_stops_there(run_cli):
    result = run_cli(*ARGS, "--time-limit", "0.001s")
    rows = _rows(result)
    # no header for a rung that trains nothing: the log says it did not fit
    assert "does not fit in what is left of the limit" in result.stderr and "for up to 1 " not in result.stderr
    trained = [r for r in rows.values() if r["status"] == "ok"]
    assert len(trained) == 1 and trained[0]["rung"] == "1/3 (1 ep)"  # the first one fits, then time is up
    assert all(r["reason"] == "the time limit was spent before its first rung"
               for r in rows.values() if r["status"] == "failed")


def test_bad_time_limits_are_refused_before_work(run_cli):
    for value, needle in (("soon", "is not a duration"), ("0s", "is not a duration")):
        result = run_cli("select", "--task", "synthetic", "--time-limit", value)
        assert result.exit_code == 2 and needle in result.output
    result = run_cli("select", "--task", "synthetic", "--time-limit", "1m", "--seeds", "2")
    assert result.exit_code == 2 and "one seed" in result.output
    result = run_cli("select", "--task", "synthetic", "--halving", "--seeds", "2")
    assert result.exit_code == 2 and "--halving works with one seed" in result.output
    result = run_cli("select", "--task", "synthetic", "--no-halving", "--time-limit", "1m")
    assert result.exit_code == 2 and "cannot go with halving off" in result.output


def test_time_limit_on_ray(run_cli):
    pytest.importorskip("ray")
    result = run_cli("select", "--task", "synthetic", "--candidates", "cifar_convnet_xs,cifar_resnet8",
                     "--epochs", "3", "--train-limit", "200", "--format", "json", "--time-limit", "10m",
                     "--executor", "ray")  # rungs of 1 and 3 epochs: two Ray rounds
    rows = _rows(result)
    assert sorted(r["rung"] for r in rows.values()) == ["1/2 (1 ep)", "2/2 (3 ep)"]
    # one Ray instance serves both rungs (it used to be started, and its workers with it, per rung)
    assert result.stderr.count("Ray: started a local instance") == 1, result.stderr
    assert result.stderr.index("Ray: started") < result.stderr.index("rung 2/2")
    assert run_cli("registry", "check").exit_code == 0
