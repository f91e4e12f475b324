"""Below the first stage a selection passes objects, not names: the task is looked up once and each
candidate resolved once, however many stages, rungs and estimates use them (issue 26)."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.context import Context
from harness.models.sources import ModelSource
from harness.select.config import SelectConfig
from harness.select.run import select
from harness.select.stages import run_stages, train
from registry.catalogue import Catalogue


class TrainOnly:
    """An executor that runs the training stage only (export, parity and bench resolve the trained
    versions, not the candidates, and cost time this test does not need)."""

    def run(self, ctx, plan, runs):
        return [run_stages(ctx, plan, r, (train,)) for r in runs]


@pytest.mark.slow  # trains two candidates for an epoch (~15 s of CPU)
def test_a_selection_looks_its_task_up_once_and_resolves_each_candidate_once(trained, builtin_plugins, monkeypatch):
    resolved: Counter[str] = Counter()
    looked_up: Counter[str] = Counter()
    make_source, task_of = ModelSource.__init__, Catalogue.task

    def counted_source(self, ref, *args, **kwargs):
        resolved[ref] += 1
        make_source(self, ref, *args, **kwargs)

    def counted_task(self, name):
        looked_up[name] += 1
        return task_of(self, name)

    monkeypatch.setattr(ModelSource, "__init__", counted_source)
    monkeypatch.setattr(Catalogue, "task", counted_task)
    config = SelectConfig.from_options("synthetic", candidates=f"cifar_convnet_xs,{trained}", halving=True,
                                       recipe={"epochs": 1, "train_limit": 200, "batch_size": 64})
    with Context(builtin_plugins) as ctx:  # not quiet: the estimate probes every candidate too
        result = select(ctx, config, TrainOnly())
    assert {r.candidate for r in result.rows} == {"cifar_convnet_xs", trained}
    assert all(r.status == "ok" for r in result.rows), [r.failure for r in result.rows]
    assert looked_up["synthetic"] == 1
    # the estimate, the fingerprint of every seed and rung, and the training share one resolution
    assert resolved["cifar_convnet_xs"] == 1 and resolved[trained] == 1, resolved
