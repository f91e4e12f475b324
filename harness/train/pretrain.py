"""Pretraining: supervised on a source dataset, or self-supervised as a convolutional autoencoder
or contrastively (SimCLR, :mod:`harness.train.contrastive`).

The result is registered as a new weights version of the backbone (kind ``pretrain``), so
``finetune`` and ``select`` use it like any other weights: ``harness finetune NAME --task ...``.
Its pretraining loss and accuracy are recorded, so pretraining quality can later be related to
fine-tuning quality.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from harness.data.batches import TensorBatches
from harness.data.loading import load_split
from harness.data.preprocess import Preprocess, resolve_preprocess, to_model_input
from harness.data.splits import split_train_val, subset
from harness.environment import device_description, library_versions, select_device
from harness.evaluate.predict import predict
from harness.fingerprint import fingerprint
from harness.models.availability import require_weights
from harness.models.build import get_submodule, head_in_features, set_submodule
from harness.models.sources import ModelSource, pretrained_version, resolve_model
from harness.models.weights import save_weights
from harness.train.contrastive import Contrastive, nt_xent, pair_accuracy
from harness.train.engine import FitConfig, FitState, fit, load_checkpoint
from harness.train.finetune import warn_if_parent_removed
from harness.train.recipe import PRETRAIN_METHODS, Recipe
from harness.train.schedule import WarmupSchedule
from registry import Dataset, ImageSplit, UsageError, keys
from registry.store import ModelVersion

if TYPE_CHECKING:
    from harness.context import Context
    from harness.track import TrackedRun

METHODS = PRETRAIN_METHODS


class AutoEncoder(nn.Module):
    """The backbone (head removed) as encoder; a light transposed-convolution decoder."""

    def __init__(self, encoder: nn.Module, feature_dim: int, input_size: int, channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_size = input_size
        self.start = max(1, input_size // 8)
        self.project = nn.Sequential(nn.Linear(feature_dim, 128 * self.start * self.start), nn.ReLU(inplace=True))
        self.decode = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, channels, 4, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.flatten(self.encoder(x), 1)
        out = self.decode(self.project(z).view(-1, 128, self.start, self.start))
        if out.shape[-1] != self.input_size:
            out = nn.functional.interpolate(out, size=(self.input_size, self.input_size), mode="bilinear",
                                            align_corners=False)
        return out


def reconstruction_loss(outputs: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs.float(), inputs.float())


@dataclass
class PretrainResult:
    version: ModelVersion
    metrics: dict[str, Any]


@dataclass
class PretrainRun:
    """What the steps of one pretraining run share."""

    ref: str
    method: str
    dataset: Dataset
    recipe: Recipe
    source: ModelSource
    pre: Preprocess
    train: ImageSplit
    val: ImageSplit | None
    num_classes: int
    device: torch.device
    run_dir: Path
    run_id: str


def prepare(ctx: Context, backbone_ref: str, dataset_name: str, method: str, recipe: Recipe,
            backbone_name: str | None) -> PretrainRun:
    """Resolve the backbone and load the source data; user errors surface here, before training."""
    ctx.store.require_writable()
    if method not in METHODS:
        raise UsageError(f"{{param}} must be one of {', '.join(METHODS)}", param="method")
    dataset = ctx.catalogue.datasets.get(dataset_name)
    source = resolve_model(ctx, backbone_ref, backbone=backbone_name)
    require_weights(source)  # before the data loads
    size = recipe.input_size or dataset.image_size or source.backbone.input_size
    pre = resolve_preprocess(source, size, augmentation=("random_crop", "hflip"), crop_padding=max(2, size // 8))
    device = select_device(ctx.device)
    split = load_split(ctx, dataset_name, "train", image_size=pre.input_size)
    num_classes = dataset.num_classes or len(split.class_names)
    train, val = split_train_val(subset(split, recipe.train_limit, recipe.seed), recipe.val_fraction, recipe.seed)
    if len(train) < recipe.batch_size:
        raise UsageError(f"only {len(train)} images for batch size {recipe.batch_size}; lower {{param}}",
                         param="batch_size")
    run_id = fingerprint("pretrain", backbone_ref, dataset_name, method, recipe.as_dict(), pre.as_dict(), str(device))
    return PretrainRun(backbone_ref, method, dataset, recipe, source, pre, train, val, num_classes, device,
                       ctx.store.home / "runs" / run_id, run_id)


def _validator(run: PretrainRun):
    """Validation accuracy (supervised), positive-pair accuracy (contrastive) or reconstruction
    MSE per pixel (autoencoder)."""
    val, pre, dev = run.val, run.pre, run.device

    def validate(m: nn.Module) -> float:
        assert val is not None
        if run.method == "supervised":
            logits = predict(m, val.images, val.labels, pre, dev)
            return float((logits.argmax(1) == val.labels).float().mean())
        if run.method == "contrastive":
            assert isinstance(m, Contrastive)
            scores = [pair_accuracy(m, to_model_input(val.images[s:s + 256].to(dev), pre), seed=s)
                      for s in range(0, len(val), 256)]
            return sum(scores) / len(scores)
        m.eval()
        errors = []
        with torch.no_grad():
            for start in range(0, len(val), 256):
                x = to_model_input(val.images[start:start + 256].to(dev), pre)
                errors.append(nn.functional.mse_loss(m(x).float(), x.float(), reduction="sum").item() / x[0].numel())
        return sum(errors) / len(val)

    return validate


def _trainable(run: PretrainRun) -> tuple[nn.Module, nn.Module, int]:
    """The model to save, the module to train (an autoencoder around it) and the head's input width."""
    torch.manual_seed(run.recipe.seed)
    model = run.source.build(run.num_classes)
    head = run.source.backbone.head
    feature_dim = head_in_features(get_submodule(model, head))
    trained = model
    if run.method == "autoencoder":
        set_submodule(model, head, nn.Identity())
        trained = AutoEncoder(model, feature_dim, run.pre.input_size, run.source.backbone.channels)
    elif run.method == "contrastive":
        set_submodule(model, head, nn.Identity())
        trained = Contrastive(model, feature_dim)
    return model, trained.to(run.device).to(memory_format=torch.channels_last), feature_dim


def train(ctx: Context, run: PretrainRun, resume: bool,
          tracked: TrackedRun | None = None) -> tuple[nn.Module, FitState, int]:
    """Train; returns the backbone (autoencoders get a 1-way head back), its state, the saved class count."""
    recipe = run.recipe
    model, trained, feature_dim = _trainable(run)
    optimizer = torch.optim.SGD(trained.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                                weight_decay=recipe.weight_decay)
    generator = torch.Generator().manual_seed(recipe.seed)
    batches = TensorBatches(run.train.images, run.train.labels, recipe.batch_size, run.pre, run.device, train=True,
                            generator=generator)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupSchedule(
        recipe.epochs * len(batches), int(recipe.warmup_epochs * len(batches)), recipe.schedule))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run.run_dir / "checkpoint.pt"
    state = None
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, trained, optimizer, scheduler, generator, run.run_id)
    supervised = run.method == "supervised"
    config = FitConfig(epochs=recipe.epochs, higher_is_better=run.method != "autoencoder", patience=recipe.patience,
                       label_smoothing=recipe.label_smoothing if supervised else 0.0, progress=ctx.progress,
                       checkpoint=checkpoint, fingerprint=run.run_id,
                       on_epoch=(lambda record: ctx.tracking.epoch(tracked, record)) if tracked else None)
    loss = {"supervised": None, "autoencoder": reconstruction_loss, "contrastive": nt_xent}[run.method]
    state = fit(trained, batches, optimizer, scheduler, config, _validator(run) if run.val else None, (), state,
                loss_fn=loss)
    trained.load_state_dict(state.best_weights())
    if not supervised:  # a fresh 1-way head makes the file an ordinary backbone state dict
        set_submodule(model, run.source.backbone.head, nn.Linear(feature_dim, 1))
    return model.to("cpu").to(memory_format=torch.contiguous_format), state, run.num_classes if supervised else 1


def _summary(run: PretrainRun, state: FitState) -> dict[str, Any]:
    last = state.history[-1]
    summary: dict[str, Any] = {"method": run.method, "dataset": run.dataset.name, "train_loss": last["train_loss"],
                               "best_epoch": state.best_epoch,
                               "seconds": round(sum(h["seconds"] for h in state.history), 2)}
    if run.method == "supervised":
        summary.update(train_accuracy=last.get("train_accuracy"), val_accuracy=state.best_metric)
    elif run.method == "contrastive":
        summary["val_pair_accuracy"] = state.best_metric
    else:
        summary["val_reconstruction_mse"] = state.best_metric
    return summary


def _register(ctx: Context, run: PretrainRun, model: nn.Module, state: FitState, classes: int,
              summary: dict[str, Any], parent: ModelVersion | None, name: str | None) -> ModelVersion:
    """Write the weights and record the pretrain version (its run folder is removed after)."""
    backbone, method, recipe = run.source.backbone.name, run.method, run.recipe
    path = save_weights(model, run.run_dir / "weights.safetensors",
                        {"backbone": backbone, "num_classes": classes, "pretrain": method})
    supervised = method == "supervised"
    version = ctx.store.register(
        name or f"{backbone}-{method}-{run.dataset.name}", backbone=backbone, kind="pretrain",
        files={keys.ROLE_WEIGHTS: path}, parent=parent, dataset=run.dataset.name,
        num_classes=classes if supervised else None, class_names=run.train.class_names if supervised else None,
        recipe={**recipe.as_dict(), "method": method, "preprocess": run.pre.as_dict(), "source": run.ref},
        metrics={keys.PRETRAIN: summary, keys.HISTORY: state.history},
        environment={**library_versions(), "device": device_description(run.device)},
        seed=recipe.seed, device=run.device.type, artifact_meta={keys.ROLE_WEIGHTS: {"format": "safetensors"}},
    )
    shutil.rmtree(run.run_dir, ignore_errors=True)
    ctx.progress.info(f"registered {version.ref}")
    warn_if_parent_removed(ctx, version)
    return version


def pretrain(ctx: Context, backbone_ref: str, dataset_name: str, method: str, recipe: Recipe, *,
             name: str | None = None, resume: bool = False, backbone_name: str | None = None) -> PretrainResult:
    """Pretrain ``backbone_ref`` on ``dataset_name`` and register the weights.

    ``backbone_ref`` may be a weights file; ``backbone_name`` then names its architecture.
    """
    ctx.check_new_name(name)
    run = prepare(ctx, backbone_ref, dataset_name, method, recipe, backbone_name)
    ctx.progress.info(f"pretraining {backbone_ref} on {dataset_name} ({method}): {len(run.train)} train / "
                      f"{len(run.val) if run.val else 0} val images at {run.pre.input_size}px, {recipe.epochs} "
                      f"epochs, {device_description(run.device)}")
    parent = run.source.version or pretrained_version(ctx, run.source)
    from harness.track import WEIGHTS_NAME

    # named like a fine-tune's run (<dataset>/<model>), so both read alike in a tracker's UI
    with ctx.tracking.running(name or f"{dataset_name}/{backbone_ref}", "pretrain", dataset_name,
                              {**recipe.as_dict(), "method": method, "backbone": backbone_ref},
                              {"harness.model": backbone_ref, "harness.method": method}) as tracked:
        model, state, classes = train(ctx, run, resume, tracked)
        summary = _summary(run, state)
        version = _register(ctx, run, model, state, classes, summary, parent, name)
        if tracked:
            ctx.tracking.artifact(tracked, "weights", version.artifacts[keys.ROLE_WEIGHTS].path, WEIGHTS_NAME)
            ctx.tracking.finish(tracked, "FINISHED", summary, version.ref)
    return PretrainResult(version, summary)
