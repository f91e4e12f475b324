"""Pretraining: supervised on a source dataset, or self-supervised as a convolutional autoencoder.

The result is registered as a new weights version of the backbone (kind ``pretrain``), so
``finetune`` and ``select`` use it like any other weights: ``harness finetune NAME --task ...``.
Its pretraining loss and accuracy are recorded, so pretraining quality can later be related to
fine-tuning quality.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.data import load_split
from harness.environment import device_description, library_versions, select_device
from harness.models import get_submodule, head_in_features, set_submodule
from harness.sources import pretrained_version, resolve_model
from harness.train.batches import Preprocess, TensorBatches, to_model_input
from harness.train.engine import FitConfig, fit, load_checkpoint, log
from harness.train.evaluate import predict
from harness.train.finetune import fingerprint, split_train_val, subset
from harness.train.recipe import Recipe
from harness.train.schedule import WarmupSchedule
from harness.weights import save_weights
from registry import Catalogue, UsageError
from registry.store import ModelStore, ModelVersion

METHODS = ("supervised", "autoencoder")


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


def pretrain(catalogue: Catalogue, store: ModelStore, backbone_ref: str, dataset_name: str, method: str,
             recipe: Recipe, *, name: str | None = None, data_dir: str | None = None, download: bool = False,
             device: str = "auto", quiet: bool = False, resume: bool = False,
             backbone_name: str | None = None) -> PretrainResult:
    """Pretrain ``backbone_ref`` on ``dataset_name`` and register the weights.

    ``backbone_ref`` may be a weights file; ``backbone_name`` then names its architecture.
    """
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    dataset = catalogue.datasets.get(dataset_name)
    source = resolve_model(catalogue, store, backbone_ref, backbone=backbone_name)
    backbone = source.backbone
    size = recipe.input_size or dataset.image_size or backbone.input_size
    if backbone.fixed_input_size:
        size = backbone.input_size
    size = max(size, backbone.min_input_size)
    tag = source.tag
    pre = Preprocess(input_size=size, channels=backbone.channels,
                     mean=tuple(tag.mean if tag and tag.mean else backbone.mean),
                     std=tuple(tag.std if tag and tag.std else backbone.std),
                     augmentation=("random_crop", "hflip"), crop_padding=max(2, size // 8))
    dev = select_device(device)
    train = load_split(catalogue, dataset_name, "train", data_dir=data_dir, download=download, image_size=size)
    num_classes = dataset.num_classes or len(train.class_names)
    train, val = split_train_val(subset(train, recipe.train_limit, recipe.seed), recipe)
    log(f"pretraining {backbone_ref} on {dataset_name} ({method}): {len(train)} train / "
        f"{len(val) if val else 0} val images at {size}px, {recipe.epochs} epochs, {device_description(dev)}", quiet)

    parent = source.version or pretrained_version(catalogue, store, source)
    torch.manual_seed(recipe.seed)
    model = source.build(catalogue, num_classes)
    if method == "autoencoder":
        feature_dim = head_in_features(get_submodule(model, backbone.head))
        set_submodule(model, backbone.head, nn.Identity())
        trained: nn.Module = AutoEncoder(model, feature_dim, size, backbone.channels)
    else:
        trained = model
    trained = trained.to(dev).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(trained.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                                weight_decay=recipe.weight_decay)
    generator = torch.Generator().manual_seed(recipe.seed)
    batches = TensorBatches(train.images, train.labels, recipe.batch_size, pre, dev, train=True, generator=generator)
    if len(batches) == 0:
        raise UsageError(f"only {len(train)} images for batch size {recipe.batch_size}; lower --batch-size")
    total = recipe.epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupSchedule(total, int(recipe.warmup_epochs * len(batches)), recipe.schedule))

    def validate(m: nn.Module) -> float:
        if method == "supervised":
            logits = predict(m, val.images, val.labels, pre, dev)
            return float((logits.argmax(1) == val.labels).float().mean())
        m.eval()
        errors = []
        with torch.no_grad():
            for start in range(0, len(val), 256):
                x = to_model_input(val.images[start:start + 256].to(dev), pre)
                errors.append(nn.functional.mse_loss(m(x).float(), x.float(), reduction="sum").item() / x[0].numel())
        return sum(errors) / len(val)

    run_id = fingerprint("pretrain", backbone_ref, dataset_name, method, recipe.as_dict(), pre.as_dict(), str(dev))
    run_dir = store.home / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.pt"
    state = None
    if resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint, trained, optimizer, scheduler, generator, run_id)
    config = FitConfig(epochs=recipe.epochs, higher_is_better=method == "supervised", patience=recipe.patience,
                       label_smoothing=recipe.label_smoothing if method == "supervised" else 0.0, quiet=quiet,
                       checkpoint=checkpoint, fingerprint=run_id)
    state = fit(trained, batches, optimizer, scheduler, config, validate if val else None, (), state,
                loss_fn=reconstruction_loss if method == "autoencoder" else None)
    trained.load_state_dict(state.best_state)
    if method == "autoencoder":
        # Give the encoder a fresh 1-way head so the file is an ordinary backbone state dict.
        set_submodule(model, backbone.head, nn.Linear(feature_dim, 1))
        save_classes = 1
    else:
        save_classes = num_classes
    model = model.to("cpu").to(memory_format=torch.contiguous_format)
    last = state.history[-1]
    seconds = round(sum(h["seconds"] for h in state.history), 2)
    metrics = {"pretrain": {"method": method, "dataset": dataset_name, "train_loss": last["train_loss"],
                            "best_epoch": state.best_epoch, "seconds": seconds}}
    if method == "supervised":
        metrics["pretrain"]["train_accuracy"] = last.get("train_accuracy")
        metrics["pretrain"]["val_accuracy"] = state.best_metric
    else:
        metrics["pretrain"]["val_reconstruction_mse"] = state.best_metric
    metrics["history"] = state.history
    path = save_weights(model, run_dir / "weights.safetensors",
                        {"backbone": backbone.name, "num_classes": save_classes, "pretrain": method})
    version = store.register(
        name or f"{backbone.name}-{method}-{dataset_name}", backbone=backbone.name, kind="pretrain",
        files={"weights": path}, parent=parent.id if parent else None, dataset=dataset_name,
        num_classes=save_classes if method == "supervised" else None,
        class_names=train.class_names if method == "supervised" else None,
        recipe={**recipe.as_dict(), "method": method, "preprocess": pre.as_dict(), "source": backbone_ref},
        metrics=metrics, environment={**library_versions(), "device": device_description(dev)},
        seed=recipe.seed, device=dev.type, artifact_meta={"weights": {"format": "safetensors"}},
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    log(f"registered {version.ref}", quiet)
    return PretrainResult(version, metrics["pretrain"])
