"""The training loop: epochs of in-memory batches, validation, best-checkpoint selection,
early stopping, NaN detection, and per-epoch checkpoints that make ``--resume`` exact.

A checkpoint holds the model, optimiser, scheduler, both RNG states (global torch and the data
generator), the best weights so far and the history, written atomically and read back with
``torch.load(weights_only=True)``. Resuming replays exactly the batches, augmentations and dropout
masks an uninterrupted run would have drawn, so on CPU it ends with identical weights.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.data.batches import TensorBatches
from harness.output import counted
from harness.progress import Progress
from harness.train.distributed import all_sum, unwrap
from registry import DataError, TrainingError
from registry.files import as_disk_full, atomic_writer


@dataclass
class FitState:
    epoch: int = 0
    step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_logits: torch.Tensor | None = None  # the kept epoch's validation logits, when the caller kept them

    def best_weights(self) -> dict[str, torch.Tensor]:
        """The best epoch's weights; :func:`fit` always keeps some (the last epoch's if none was better)."""
        if self.best_state is None:
            raise RuntimeError("no weights kept yet: fit() has not finished")
        return self.best_state


def save_checkpoint(path: Path, model: nn.Module, optimizer: Any, scheduler: Any, state: FitState,
                    generator: torch.Generator, fingerprint: str) -> None:
    payload = {
        "fingerprint": fingerprint, "epoch": state.epoch, "step": state.step,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(), "data_rng": generator.get_state(),
        "best_metric": state.best_metric, "best_epoch": state.best_epoch, "best_state": state.best_state,
        "bad_epochs": state.bad_epochs, "history": state.history,
    }
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    try:
        with atomic_writer(path) as f:
            torch.save(payload, f)
    except RuntimeError as exc:
        raise as_disk_full(exc, path) from None


def load_checkpoint(path: Path, model: nn.Module, optimizer: Any, scheduler: Any,
                    generator: torch.Generator, fingerprint: str) -> FitState:
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notice is noise beside our one-line refusal
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # truncated, zero bytes, another format (EOFError would read as "Aborted!"), a pickle
        raise _unreadable_checkpoint(path, exc) from None
    if not isinstance(payload, dict):
        raise _checkpoint_error(path, f"is not a training checkpoint (it holds a {type(payload).__name__})")
    if payload.get("fingerprint") != fingerprint:
        raise DataError(f"checkpoint {path} belongs to another run; remove it or drop {{param}}", param="resume")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng"])
    generator.set_state(payload["data_rng"])
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return FitState(epoch=payload["epoch"], step=payload["step"], best_metric=payload["best_metric"],
                    best_epoch=payload["best_epoch"], best_state=payload["best_state"],
                    bad_epochs=payload["bad_epochs"], history=list(payload["history"]))


def _unreadable_checkpoint(path: Path, exc: BaseException) -> DataError:
    """Why a resume checkpoint could not be read, in plain words from the file itself (the weights
    reader's diagnosis: :mod:`harness.models.checkpoint`), never torch's advice to load it unsafely."""
    from harness.models.checkpoint import broken_layer, pickle_trouble

    if isinstance(exc, PermissionError):  # the file may be fine: say so rather than call it damaged
        return _checkpoint_error(path, f"cannot be read ({exc.strerror})", "make it readable")
    calls, protocol = pickle_trouble(path, str(exc))
    if calls:
        return _checkpoint_error(path, f"holds pickled objects (it calls {', '.join(calls)[:120]}), which harness "
                                       "never loads: a pickle can run code")
    if protocol is not None:
        return _checkpoint_error(path, f"was saved with pickle protocol {protocol}, which torch's safe loader cannot "
                                       "read: harness did not write it")
    return _checkpoint_error(path, f"is damaged ({broken_layer(path)})")


def _checkpoint_error(path: Path, problem: str, fix: str = "delete it to start the run again") -> DataError:
    return DataError(f"checkpoint {path} {problem}; {fix}, or drop {{param}}", param="resume")


@dataclass
class FitConfig:
    epochs: int
    higher_is_better: bool = True
    patience: int | None = None
    validate_each_epoch: bool = True  # False: only after the last epoch, which is kept
    label_smoothing: float = 0.0
    amp_dtype: torch.dtype | None = None
    progress: Progress = field(default_factory=Progress)
    checkpoint: Path | None = None
    fingerprint: str = ""
    on_epoch: Callable[[dict[str, Any]], None] | None = None  # each epoch's record (experiment tracking)


@dataclass
class EpochStats:
    """What one pass over the training batches saw."""

    seen: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seconds: float = 0.0
    steps: int = 0


def _train_epoch(model: nn.Module, batches: TensorBatches, optimizer: Any, scheduler: Any, config: FitConfig,
                 state: FitState, epoch: int, criterion: Callable[..., torch.Tensor], custom_loss: bool) -> EpochStats:
    """One epoch of optimisation steps; stops the run on a NaN or infinite loss."""
    device = batches.device
    stats = EpochStats()
    started = time.perf_counter()
    bar = config.progress.bar(len(batches), f"epoch {epoch + 1}/{config.epochs}", unit="batch")
    for inputs, labels in batches:
        with torch.autocast(device.type, dtype=config.amp_dtype or torch.bfloat16,
                            enabled=config.amp_dtype is not None):
            outputs = model(inputs)
            loss = criterion(outputs, inputs, labels) if custom_loss else criterion(outputs.float(), labels)
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingError(f"loss became {loss.item()} at step {state.step + 1} (epoch {epoch + 1}); "
                                "stopped, nothing registered. Lower {param} or check the data", param="lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        state.step += 1
        stats.steps += 1
        n = labels.shape[0]
        stats.seen += n
        stats.loss_sum += loss.item() * n
        if outputs.dim() == 2 and not custom_loss:
            stats.correct += int((outputs.argmax(1) == labels).sum())
        elapsed = time.perf_counter() - started
        bar.set_postfix(loss=f"{stats.loss_sum / stats.seen:.4f}", img_s=f"{stats.seen / max(elapsed, 1e-9):.0f}")
        bar.update()
    bar.close()
    stats.seconds = time.perf_counter() - started
    return stats


def _epoch_record(epoch: int, stats: EpochStats, optimizer: Any, custom_loss: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"epoch": epoch + 1, "steps": stats.steps,
                              "train_loss": stats.loss_sum / max(stats.seen, 1),
                              "lr": optimizer.param_groups[0]["lr"], "seconds": round(stats.seconds, 3),
                              "images_per_s": round(stats.seen / max(stats.seconds, 1e-9), 1)}
    if not custom_loss:
        record["train_accuracy"] = stats.correct / max(stats.seen, 1)
    return record


def _keep_best(model: nn.Module, state: FitState, config: FitConfig, record: dict[str, Any],
               validate: Callable[[nn.Module], float] | None, custom_loss: bool, epoch: int) -> None:
    """Score the epoch (validation, else training loss or accuracy) and keep the best weights."""
    improved = True
    if validate is not None:
        metric = validate(model)
        record["val_metric"] = metric
        improved = state.best_metric is None or (
            metric > state.best_metric if config.higher_is_better else metric < state.best_metric)
    elif custom_loss:
        metric = record["train_loss"]
        improved = state.best_metric is None or metric < state.best_metric
    else:
        metric = record.get("train_accuracy", 0.0)
    if improved and not (isinstance(metric, float) and math.isnan(metric)):
        state.best_metric, state.best_epoch, state.bad_epochs = metric, epoch + 1, 0
        state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}
    else:
        state.bad_epochs += 1


def _summary(record: dict[str, Any], epochs: int) -> str:
    return (f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}"
            + (f", train acc {record['train_accuracy']:.4f}" if "train_accuracy" in record else "")
            + (f", val {record['val_metric']:.4f}" if "val_metric" in record else "")
            + f", {record['images_per_s']:.0f} img/s, {record['seconds']:.1f}s")


def fit(model: nn.Module, batches: TensorBatches, optimizer: Any, scheduler: Any, config: FitConfig,
        validate: Callable[[nn.Module], float] | None, frozen: Sequence[nn.Module] = (),
        state: FitState | None = None, loss_fn: Callable[..., torch.Tensor] | None = None) -> FitState:
    """Train ``model``; returns the final state (``best_state`` holds the best weights).

    ``loss_fn(outputs, inputs, labels)`` replaces cross-entropy (the autoencoder's reconstruction
    loss); the best epoch is then the one with the lowest training loss unless ``validate`` is given.
    """
    state = state or FitState()
    custom = loss_fn is not None
    criterion = loss_fn or nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    for epoch in range(state.epoch, config.epochs):
        model.train()
        for module in frozen:
            module.eval()
        stats = _train_epoch(model, batches, optimizer, scheduler, config, state, epoch, criterion, custom)
        seen, loss_sum, correct = all_sum([stats.seen, stats.loss_sum, stats.correct])  # every rank's, under torchrun
        stats.seen, stats.loss_sum, stats.correct = int(seen), loss_sum, int(correct)
        record = _epoch_record(epoch, stats, optimizer, custom)
        if config.validate_each_epoch or epoch == config.epochs - 1:
            _keep_best(model, state, config, record, validate, custom, epoch)
        state.history.append(record)
        state.epoch = epoch + 1
        if config.on_epoch is not None:
            config.on_epoch(record)
        if config.checkpoint is not None:  # before the epoch's line: an epoch reported is an epoch saved
            save_checkpoint(config.checkpoint, unwrap(model), optimizer, scheduler, state, batches.generator,
                            config.fingerprint)
        config.progress.info(_summary(record, config.epochs))
        if config.patience is not None and state.bad_epochs >= config.patience:
            config.progress.info(f"early stop: no improvement for {counted(config.patience, 'epoch')} "
                                 f"(best epoch {state.best_epoch})")
            break
    if state.best_state is None:
        state.best_state = copy.deepcopy(unwrap(model).state_dict())
    return state
