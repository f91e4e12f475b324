"""A ``--resume`` checkpoint that is damaged, not a checkpoint, or a pickle that would run code: one
plain line naming the file and what is wrong with it, never torch's advice to load it unsafely (and
the pickle is never run)."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch
from faultlib import assert_clean_failure, damage, store_refs
from torch import nn

from harness.train.engine import FitState, load_checkpoint, save_checkpoint
from registry import DataError

TORCH_WORDS = ("weights_only", "UnpicklingError", "torch.load", "WeightsUnpickler", "PyTorch 2.6")


class _Payload:
    """Unpickling this would create ``marker``: proof that the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _training():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 1), torch.Generator()


def _write(path: Path, how: str, tmp_path: Path) -> Path:
    model, optimizer, scheduler, generator = _training()
    good = tmp_path / "good.pt"
    save_checkpoint(good, model, optimizer, scheduler, FitState(epoch=1), generator, "run-1")
    data = good.read_bytes()
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    if how == "zip-pickle":  # torch.save's own format, one object inside that would run os.mkdir
        torch.save({"fingerprint": "run-1", "model": _Payload(marker)}, buffer)
    elif how == "raw-pickle":
        pickle.dump(_Payload(marker), buffer, protocol=2)
    elif how == "a-list":
        torch.save([1, 2, 3], buffer)
    content = {"zero": b"", "truncated": data[: len(data) // 3], "text": b"not a checkpoint\n" * 20,
               "garbage": bytes((i * 37 + 11) % 256 for i in range(len(data)))}.get(how, buffer.getvalue())
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("how, problem", [
    ("zero", "is damaged (the file is empty)"),
    ("truncated", "is damaged (its zip container is incomplete or damaged)"),
    ("text", "is damaged (neither a zip container nor a pickle)"),
    ("garbage", "is damaged (neither a zip container nor a pickle)"),
    ("zip-pickle", "holds pickled objects (it calls posix.mkdir), which harness never loads: a pickle can run code"),
    ("raw-pickle", "holds pickled objects (it calls posix.mkdir), which harness never loads: a pickle can run code"),
    ("a-list", "is not a training checkpoint (it holds a list)"),
])
def test_an_unreadable_checkpoint_is_named_in_plain_words(tmp_path, how, problem):
    path = _write(tmp_path / f"{how}.pt", how, tmp_path)
    with pytest.raises(DataError) as caught:
        load_checkpoint(path, *_training(), "run-1")
    message = str(caught.value)
    assert message == f"checkpoint {path} {problem}; delete it to start the run again, or drop resume"
    assert caught.value.param == "resume"
    assert not any(word in message for word in TORCH_WORDS), message
    assert not (tmp_path / "pwned").exists()


def test_a_good_checkpoint_still_resumes(tmp_path):
    model, optimizer, scheduler, generator = _training()
    save_checkpoint(tmp_path / "good.pt", model, optimizer, scheduler, FitState(epoch=1), generator, "run-1")
    assert load_checkpoint(tmp_path / "good.pt", *_training(), "run-1").epoch == 1


@pytest.mark.parametrize("how, problem", [("garbage", "is damaged"), ("zip-pickle", "holds pickled objects")])
def test_finetune_resume_refuses_a_bad_checkpoint_in_one_line(run_cli, trained, tmp_path, how, problem):
    from helpers import make_plugins

    from harness.context import Context
    from harness.train.finetune import prepare
    from harness.train.recipe import Recipe

    args = ("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "2", "--train-limit", "128",
            "--batch-size", "64", "--seed", "7")
    with Context(make_plugins(), quiet=True) as ctx:
        run = prepare(ctx, "cifar_convnet_xs", "synthetic", Recipe(epochs=2, train_limit=128, batch_size=64, seed=7))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = _write(run.run_dir / "checkpoint.pt", how, tmp_path)
    before = store_refs()
    result = run_cli(*args, "--resume")
    assert_clean_failure(result, 2, f"checkpoint {checkpoint} {problem}")
    assert "drop --resume" in result.output
    assert not any(word in result.output for word in TORCH_WORDS), result.output
    assert not (tmp_path / "pwned").exists() and store_refs() == before


def test_damage_helper_files_are_refused_too(tmp_path):
    """The fault library's own damaged files (as the weights tests use) read the same way."""
    for how in ("pickle-payload", "not-a-state-dict"):
        path = damage(None, tmp_path / f"{how}.pt", how)
        with pytest.raises(DataError, match=f"^checkpoint {path} (holds pickled objects|is not a training)"):
            load_checkpoint(path, *_training(), "run-1")


def test_an_unreadable_file_is_not_called_damaged(tmp_path):
    """Permission denied says so (root reads any file, so the error is made rather than provoked)."""
    from harness.train.engine import _unreadable_checkpoint

    error = _unreadable_checkpoint(tmp_path / "checkpoint.pt", PermissionError(13, "Permission denied"))
    assert str(error) == (f"checkpoint {tmp_path / 'checkpoint.pt'} cannot be read (Permission denied); make it "
                          "readable, or drop resume")
