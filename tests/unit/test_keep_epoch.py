"""Recipe.keep_epoch: validate every epoch and keep the best, or validate once and keep the last."""

from __future__ import annotations

import pytest
import torch

from harness.train.engine import FitConfig, fit
from harness.train.recipe import Recipe
from registry import UsageError


class _Batches(list):
    """Two fixed batches: all :func:`fit` reads of :class:`TensorBatches`."""

    device = torch.device("cpu")
    generator = None


def _fit(validate_each_epoch: bool) -> tuple[list[int], object]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    batches = _Batches([(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scores = iter([0.9, 0.5, 0.4, 0.3])  # the first epoch validates best
    calls: list[int] = []

    def validate(m: torch.nn.Module) -> float:
        calls.append(len(calls))
        return next(scores)

    config = FitConfig(epochs=4, validate_each_epoch=validate_each_epoch)
    return calls, fit(model, batches, optimizer, scheduler, config, validate)


def test_best_validates_every_epoch_and_keeps_the_best():
    calls, state = _fit(True)
    assert len(calls) == 4 and state.best_epoch == 1 and state.best_metric == 0.9


def test_last_validates_once_and_keeps_the_last_epoch():
    calls, state = _fit(False)
    assert len(calls) == 1 and state.best_epoch == 4 and state.best_metric == 0.9  # its one score
    assert [("val_metric" in r) for r in state.history] == [False, False, False, True]


def test_keep_epoch_is_left_out_of_fingerprints_at_its_default():
    assert "keep_epoch" not in Recipe().as_dict()  # runs recorded before the field keep their fingerprints
    assert Recipe(keep_epoch="last").as_dict()["keep_epoch"] == "last"
    assert Recipe(**Recipe(keep_epoch="last").as_dict()) == Recipe(keep_epoch="last")


def test_keep_last_refuses_patience_and_unknown_values():
    with pytest.raises(UsageError, match="cannot go with keep_epoch last"):
        Recipe(keep_epoch="last", patience=2)
    with pytest.raises(UsageError, match="must be one of best, last"):
        Recipe(keep_epoch="first")


def test_patience_needs_validation_images():
    with pytest.raises(UsageError, match="needs validation images to stop on: it cannot go with val_fraction 0"):
        Recipe(patience=2, val_fraction=0.0)
