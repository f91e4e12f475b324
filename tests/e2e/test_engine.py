"""The training engine: batches, strategies, learning, determinism, resume, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from click.testing import CliRunner
from helpers import harness_exe

from harness.data.batches import TensorBatches
from harness.data.preprocess import Preprocess, random_crop, to_model_input
from harness.evaluate.model import evaluate_model
from harness.train.finetune import finetune
from harness.train.freeze import apply_strategy, blocks, param_groups
from harness.train.recipe import Recipe, recipe_for
from registry.store import ModelStore


def test_random_crop_takes_windows_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    out = random_crop(images, 1, g)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for b in range(2):
        windows = [padded[b, :, y:y + 4, x:x + 4] for y in range(3) for x in range(3)]
        assert any(torch.equal(out[b], w) for w in windows)


def test_to_model_input_resizes_expands_and_normalises():
    grey = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    pre = Preprocess(input_size=32, channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = to_model_input(grey, pre)
    assert x.shape == (2, 3, 32, 32) and torch.allclose(x, torch.ones_like(x))


def test_batches_are_reproducible_and_cover_the_split():
    images = torch.randint(0, 255, (100, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(100)
    pre = Preprocess(input_size=8, augmentation=("random_crop", "hflip"), crop_padding=2)
    run = [torch.cat([y for _, y in TensorBatches(images, labels, 32, pre, torch.device("cpu"), train=True,
                                                  generator=torch.Generator().manual_seed(5))]) for _ in range(2)]
    assert torch.equal(run[0], run[1]) and len(run[0]) == 96  # drop_last in training
    test = torch.cat([y for _, y in TensorBatches(images, labels, 32, pre, torch.device("cpu"), train=False)])
    assert test.tolist() == list(range(100))


def test_strategies(catalogue):
    from harness.models import build_model

    model = build_model(catalogue, "resnet18", 10)
    assert len(blocks(model, "fc")) >= 4
    frozen = apply_strategy(model, "fc", "linear")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert model.conv1 in frozen
    apply_strategy(model, "fc", "partial", 1)
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4.1", "fc.weight", "fc.bias"}
    apply_strategy(model, "fc", "full")
    groups = param_groups(model, "fc", lr=0.1, backbone_lr_mult=0.1, weight_decay=5e-4)
    head = next(g for g in groups if any(p is model.fc.weight for p in g["params"]))
    body = next(g for g in groups if any(p is model.conv1.weight for p in g["params"]))
    assert head["lr"] == 0.1 and body["lr"] == pytest.approx(0.01)
    bn = next(g for g in groups if any(p is model.bn1.weight for p in g["params"]))
    assert bn["weight_decay"] == 0.0
    vit = build_model(catalogue, "vit_b_16", 10)
    assert len(blocks(vit, "heads.head")) >= 12  # encoder layers are the blocks


def _quick(**kw) -> Recipe:
    return Recipe(**{"epochs": 2, "batch_size": 64, "lr": 0.05, "budget": "quick", **kw})


@pytest.mark.slow
def test_finetune_learns_registers_and_evaluates(ctx):
    store = ctx.store
    result = finetune(ctx, "cifar_convnet_s", "synthetic", _quick(), alias="best")
    v = result.version
    assert v.ref == "synthetic@1" and v.aliases == ("best",) and v.parent_ref is None
    assert result.test.metrics["accuracy"] > 0.5  # chance is 0.1
    assert set(v.metrics["test"]) == {"accuracy", "macro_f1", "top5_accuracy", "ece"}
    assert store.check() == [] and not any((store.home / "runs").iterdir())
    report = evaluate_model(ctx, "synthetic:best")
    assert report.metrics["accuracy"] == pytest.approx(result.test.metrics["accuracy"])
    assert sum(map(sum, report.as_dict()["confusion_matrix"])) == 300
    assert "eval:synthetic" in store.get("synthetic@1").metrics


@pytest.mark.slow
def test_same_seed_same_data_same_result(ctx):
    a = finetune(ctx, "cifar_resnet20", "synthetic", _quick(epochs=1, seed=7))
    b = finetune(ctx, "cifar_resnet20", "synthetic", _quick(epochs=1, seed=7))
    assert a.test.metrics == b.test.metrics
    assert a.version.artifacts["weights"].sha256 == b.version.artifacts["weights"].sha256


def test_linear_probe_keeps_pretrained_backbone_and_records_lineage(ctx):
    from safetensors.torch import load_file
    from torchvision.models import resnet18

    from harness.models import weights_cache_path

    _, tag = ctx.catalogue.backbone("resnet18.tv_in1k")
    path = weights_cache_path(tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(3)
    torch.save(resnet18().state_dict(), path)
    result = finetune(ctx, "resnet18.tv_in1k", "synthetic",
                      _quick(epochs=1, strategy="linear", train_limit=256, test_limit=64))
    assert result.version.parent_ref == "resnet18.tv_in1k@1"
    parent = ctx.store.get("resnet18.tv_in1k@1")
    assert parent.kind == "pretrained" and parent.num_classes == 1000
    tuned = load_file(str(result.version.artifacts["weights"].path))
    original = load_file(str(parent.artifacts["weights"].path))
    assert torch.equal(tuned["layer3.0.conv1.weight"], original["layer3.0.conv1.weight"])
    assert torch.equal(tuned["bn1.running_mean"], original["bn1.running_mean"])  # frozen BN stays frozen
    assert tuned["fc.weight"].shape == (10, 512)


@pytest.mark.slow
def test_pretrain_autoencoder_then_finetune(ctx):
    from harness.train.pretrain import pretrain

    pre = pretrain(ctx, "cifar_resnet20", "synthetic", "autoencoder",
                   Recipe(epochs=1, batch_size=64, label_smoothing=0.0, budget="pretrain"))
    assert pre.version.kind == "pretrain" and pre.metrics["val_reconstruction_mse"] > 0
    tuned = finetune(ctx, pre.version.ref, "synthetic", _quick(epochs=1))
    assert tuned.version.parent_ref == pre.version.ref


@pytest.mark.slow
def test_pretrain_contrastive_learns_to_pair_views_then_finetunes(ctx):
    from harness.train.pretrain import pretrain

    recipe = Recipe(epochs=2, batch_size=64, label_smoothing=0.0, budget="pretrain", train_limit=640, lr=0.1)
    pre = pretrain(ctx, "cifar_convnet_xs", "synthetic", "contrastive", recipe)
    history = pre.version.metrics["history"]
    assert pre.version.kind == "pretrain" and pre.version.num_classes is None  # labels never used
    assert 0 < pre.metrics["val_pair_accuracy"] <= 1
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert pre.version.recipe["method"] == "contrastive"
    tuned = finetune(ctx, pre.version.ref, "synthetic", _quick(epochs=1))
    assert tuned.version.parent_ref == pre.version.ref


def test_nan_loss_stops_with_step_and_registers_nothing(run_cli):
    result = run_cli("finetune", "cifar_convnet_s", "--task", "synthetic", "--lr", "1e30", "--epochs", "1",
                     "--label-smoothing", "0", "--quiet")
    assert result.exit_code == 1
    assert "at step" in result.output and "nothing registered" in result.output
    with ModelStore() as store:
        assert store.list() == []


@pytest.mark.slow
def test_finetune_from_a_plain_state_dict_file_records_it_as_parent(run_cli, catalogue, tmp_path):
    from harness.models import build_model

    path = tmp_path / "mine.pth"
    torch.save(build_model(catalogue, "cifar_convnet_s", num_classes=1000).state_dict(), path)
    args = ("finetune", str(path), "--task", "synthetic", "--epochs", "1", "--train-limit", "200", "--quiet",
            "--format", "json")
    unknown = run_cli(*args)
    assert unknown.exit_code == 2 and "--backbone NAME" in unknown.output and "registry import" in unknown.output
    parents = {json.loads(run_cli(*args, "--backbone", "cifar_convnet_s").stdout)["parent"] for _ in range(2)}
    assert parents == {"cifar_convnet_s-mine@1"}  # imported once, reused by the second run
    with ModelStore() as store:
        assert store.get("cifar_convnet_s-mine@1").kind == "import"
        assert [v.version for v in store.list("synthetic")] == [1, 2]

    # BACKBONE --weights FILE is the same thing, for finetune, pretrain and evaluate
    again = run_cli("finetune", "cifar_convnet_s", "--weights", str(path), *args[2:])
    assert json.loads(again.stdout)["parent"] == "cifar_convnet_s-mine@1"
    pre = run_cli("pretrain", "cifar_convnet_s", "--weights", str(path), "--dataset", "synthetic", "--epochs", "1",
                  "--train-limit", "200", "--quiet", "--format", "json")
    assert pre.exit_code == 0, pre.output
    with ModelStore() as store:
        assert store.get(json.loads(pre.stdout)["model"]).parent_ref == "cifar_convnet_s-mine@1"
    wrong = run_cli("evaluate", "cifar_convnet_s", "--weights", str(path), "--task", "synthetic")
    assert wrong.exit_code == 2 and "predicts 1000 classes but task synthetic has 10" in wrong.output
    tagged = run_cli("finetune", "resnet18.tv_in1k", "--weights", str(path), "--task", "synthetic")
    assert tagged.exit_code == 2 and "plain backbone name" in tagged.output


def test_bad_inputs_exit_2_and_leave_the_store_untouched(run_cli, tmp_path):
    import pickle

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"x": os.system}))
    assert run_cli("registry", "import", "cifar_resnet20", str(evil)).exit_code == 2
    r20 = tmp_path / "r20.pth"
    from harness.plugins import get_plugins  # noqa: F401
    from plugins.cifar_models import CifarResNet

    torch.save(CifarResNet(20, 10).state_dict(), r20)
    wrong = run_cli("registry", "import", "cifar_resnet56", str(r20))
    assert wrong.exit_code == 2 and "does not fit cifar_resnet56" in wrong.output
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(r20.read_bytes()[:500])
    assert run_cli("registry", "import", "cifar_resnet20", str(truncated)).exit_code == 2
    unknown = run_cli("finetune", "cifar_resnet20", "--task", "fashion-mnst")
    assert unknown.exit_code == 2 and "did you mean 'fashion-mnist'" in unknown.output
    with ModelStore() as store:
        assert store.list() == []
    ok = run_cli("registry", "import", "cifar_resnet20", str(r20), "--name", "r20", "--format", "json")
    assert ok.exit_code == 0
    mismatch = run_cli("evaluate", "r20", "--task", "cifar100")
    assert mismatch.exit_code == 2
    with ModelStore() as store:
        artifact = store.get("r20").artifacts["weights"].path
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    altered = run_cli("finetune", "r20", "--task", "synthetic", "--epochs", "1", "--quiet")
    assert altered.exit_code == 2 and "do not match their sha256" in altered.output
    assert run_cli("registry", "check").exit_code == 1
    assert "Traceback" not in altered.output


@pytest.mark.slow
def test_resume_after_kill_ends_with_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    args = ["finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "4", "--quiet", "--device", "cpu"]
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    subprocess.run([*harness_exe(), *args, "--name", "straight"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([*harness_exe(), *args, "--name", "resumed"], env=env)
    runs = tmp_path / "home" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/checkpoint.pt")):
        time.sleep(0.05)
    assert list(runs.glob("*/checkpoint.pt")), "no checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ModelStore(tmp_path / "home") as store:
        assert [v.name for v in store.list()] == ["straight"]  # the killed run registered nothing
        assert store.check() == []
    loud = [a for a in args if a != "--quiet"]
    done = subprocess.run([*harness_exe(), *loud, "--name", "resumed", "--resume"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming run" in done.stderr
    with ModelStore(tmp_path / "home") as store:
        a = load_file(str(store.get("straight").artifacts["weights"].path))
        b = load_file(str(store.get("resumed").artifacts["weights"].path))
        assert store.get("straight").metrics["test"] == store.get("resumed").metrics["test"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_says_how_to_resume_and_exits_130(tmp_path):
    args = ["finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "20", "--device", "cpu"]
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    # as from a terminal: a parent that ignores SIGINT (pytest-xdist's workers, a shell's background
    # job) passes that on, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([*harness_exe(), *args], env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = tmp_path / "home" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/checkpoint.pt")):
        time.sleep(0.05)
    assert list(runs.glob("*/checkpoint.pt")), "no checkpoint appeared"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted; nothing was registered" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    with ModelStore(tmp_path / "home") as store:
        assert store.list() == [] and store.check() == []


def test_recipe_validation_and_budgets(catalogue):
    task = catalogue.tasks.get("fashion-mnist")
    quick = recipe_for(task, "quick")
    assert quick.train_limit == 12_000 and quick.epochs == 3 and quick.augmentation == ("hflip",)
    assert recipe_for(task, "quick", epochs=7, lr=None).epochs == 7
    with pytest.raises(Exception, match="epochs must be at least 1"):
        recipe_for(task, "quick", epochs=0)
    runner = CliRunner()
    from harness.cli import cli

    result = runner.invoke(cli, ["finetune", "cifar_resnet20", "--task", "synthetic", "--strategy", "half"])
    assert result.exit_code == 2
