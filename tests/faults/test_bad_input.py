"""Fault injection, part 1: bad options and damaged files of every kind harness reads.

Each case runs the real CLI in-process on a store holding one trained version and asserts: the exit
code (2: the user's input; 1: the environment), one ``Error:`` line and no traceback, and a store
that ``registry check`` still passes with the same versions as before.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faultlib import assert_clean_failure, damage, onnx_variant, store_refs

from registry.store import ModelStore

M = "{model}"
BAD_OPTIONS = [
    # (args, text the error names)
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--test-limit", "0"), "--test-limit"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--test-limit", "-5"), "--test-limit"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--patience", "-1"), "--patience"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--weight-decay", "-1"), "--weight-decay"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--warmup-epochs", "-3"), "--warmup-epochs"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--blocks", "-2"), "--blocks"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--backbone-lr-mult", "-5"), "--backbone-lr-mult"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--input-size", "100000"), "--input-size"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--batch-size", "0"), "--batch-size"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "0"), "--epochs"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--lr", "0"), "--lr"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--batch-size", "5000"), "--batch-size"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--batch-size", "512", "--input-size", "4096"),
     "GiB free"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--name", "bad name!"), "--name"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--alias", "9lives"), "--alias"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetc"), "did you mean 'synthetic'"),
    (("finetune", "cifar_convnet_x", "--task", "synthetic"), "did you mean 'cifar_convnet_xs'"),
    (("finetune", "cifar_convnet_xs", "--task", "synthetic", "--weights", "/nonexistent.pth"), "does not exist"),
    (("pretrain", "cifar_convnet_xs", "--dataset", "synthetic", "--epochs", "0"), "--epochs"),
    (("pretrain", "cifar_convnet_xs", "--dataset", "synthetc"), "did you mean 'synthetic'"),
    (("evaluate", M, "--test-limit", "0"), "--test-limit"),
    (("evaluate", M, "--task", "cifar100"), "cifar100"),
    (("evaluate", "synthetic@99"), "synthetic has versions 1"),
    (("export", M, "--opset", "99999"), "--opset"),
    (("export", M, "--opset", "1"), "--opset"),
    (("check-onnx", M, "--samples", "0"), "--samples"),
    (("check-onnx", M, "--batch-size", "0"), "--batch-size"),
    (("bench", M, "--iters", "0"), "--iters"),
    (("bench", M, "--batch-sizes", "0"), "--batch-sizes"),
    (("bench", M, "--runtimes", "tensorrt"), "tensorrt"),
    (("select", "--task", "synthetic", "--seeds", "0"), "--seeds"),
    (("select", "--task", "synthetic", "--batch-size", "5000", "--epochs", "1"), "lower --batch-size"),
    (("select", "--task", "synthetic", "--candidates", "nonet"), "nonet"),
    (("select", "--task", "synthetic", "--budget", "huge"), "--budget"),
    (("leaderboard", "--task", "synthetic", "--sort", "speed"), "speed"),
    (("registry", "import", "cifar_convnet_xs", "/nonexistent.safetensors"), "does not exist"),
    (("registry", "tag", M, "--alias", "1"), "bad --alias"),  # the flag, though tag keeps it as aliases
    (("registry", "show", "nothing@1"), "unknown model"),
    (("evaluate", "fashion-mnist@999"), "unknown model 'fashion-mnist'"),  # a task's name, not a backbone
    (("show", "resnet18.nosuchtag"), "nosuchtag"),
]


@pytest.mark.parametrize("args,needle", BAD_OPTIONS, ids=[" ".join(a)[:60] for a, _ in BAD_OPTIONS])
def test_bad_options_are_refused_before_any_work(run_cli, trained, args, needle):
    before = store_refs()
    result = run_cli(*[a.format(model=trained) for a in args])
    assert_clean_failure(result, 2, needle)
    assert store_refs() == before


UNWRITABLE_OUT = [
    # (args, the path the error names): refused before the context opens (no model built, no image read)
    (("export", M, "--out", "/proc/nope"), "/proc/nope"),
    (("card", M, "--out", "/proc/nope/card.md"), "/proc/nope/card.md"),
    (("report", "--task", "synthetic", "--out", "/proc/x.html"), "/proc/x.html"),
    (("export", M, "--out", "{file}/exports"), "{file}/exports"),
    (("card", M, "--out", "{file}/card.md"), "{file}/card.md"),
    (("report", "--task", "synthetic", "--out", "{file}/sub/r.html"), "{file}/sub/r.html"),
]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="/proc is Linux's")
@pytest.mark.parametrize("args,path", UNWRITABLE_OUT, ids=[" ".join(a)[:60] for a, _ in UNWRITABLE_OUT])
def test_an_out_path_that_cannot_be_written_is_refused_before_any_work(run_cli, trained, tmp_path, monkeypatch,
                                                                      args, path):
    afile = tmp_path / "a-file"
    afile.write_text("x")

    def no_work(*_args, **_kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr("harness.context.Context.__init__", no_work)
    before = store_refs()
    result = run_cli(*[a.format(model=trained, file=afile) for a in args])
    assert_clean_failure(result, 2, f"--out {path.format(file=afile)!r} cannot be written")
    assert "folder you can write to" in result.stderr
    assert store_refs() == before


def test_the_api_refuses_a_report_path_that_cannot_be_written(trained, tmp_path):
    import harness
    from registry import UsageError

    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(UsageError, match="out .*a-file/r.html' cannot be written: .* is a file, not a folder"):
        harness.write_report("synthetic", str(afile / "r.html"))
    if Path("/proc/self").is_dir():
        with pytest.raises(UsageError, match="out '/proc/x.html' cannot be written: the folder '/proc'"):
            harness.write_report("synthetic", "/proc/x.html")


def _weights_file(trained: str) -> Path:
    with ModelStore() as store:
        return store.get(trained).artifacts["weights"].path


DAMAGED_WEIGHTS = ["zero", "garbage", "truncated", "pickle-payload", "not-a-state-dict"]


def test_data_root_that_is_a_file_is_named(run_cli, trained, tmp_path, monkeypatch):
    afile = tmp_path / "not-a-folder"
    afile.write_text("x")
    monkeypatch.setenv("HARNESS_DATA", str(afile))
    assert_clean_failure(run_cli("finetune", "cifar_convnet_xs", "--task", "fashion-mnist", "--epochs", "1"),
                         2, "HARNESS_DATA")


def test_home_that_is_a_file_is_named(run_cli, tmp_path, monkeypatch):
    afile = tmp_path / "not-a-folder"
    afile.write_text("x")
    monkeypatch.setenv("HARNESS_HOME", str(afile))
    for args in (("registry", "list"), ("leaderboard", "--task", "synthetic")):
        assert_clean_failure(run_cli(*args), 2, "HARNESS_HOME")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("how", DAMAGED_WEIGHTS)
def test_damaged_weights_files_are_refused(run_cli, trained, tmp_path, how, suffix):
    path = damage(_weights_file(trained), tmp_path / f"w-{how}{suffix}", how)
    before = store_refs()
    for args in (("registry", "import", "cifar_convnet_xs", str(path)),
                 ("finetune", "cifar_convnet_xs", "--weights", str(path), "--task", "synthetic", "--epochs", "1"),
                 ("evaluate", str(path), "--backbone", "cifar_convnet_xs", "--task", "synthetic")):
        result = run_cli(*args)
        assert_clean_failure(result, 2, str(path.name))
        assert "images at" not in result.output  # refused before the data loads and the plan is printed
    assert store_refs() == before


@pytest.mark.parametrize("how", ["zero", "garbage", "truncated"])
def test_damaged_resume_checkpoint_is_named(run_cli, trained, tmp_path, how):
    args = ("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "2", "--train-limit", "128",
            "--batch-size", "64", "--seed", "7")
    first = run_cli(*args, "--epochs", "1")  # a run that leaves no checkpoint behind: make one by hand
    assert first.exit_code == 0
    with ModelStore() as store:
        runs = store.home / "runs"
    from helpers import make_plugins

    from harness.context import Context
    from harness.train.finetune import prepare
    from harness.train.recipe import Recipe

    with Context(make_plugins(), quiet=True) as ctx:
        run = prepare(ctx, "cifar_convnet_xs", "synthetic", Recipe(epochs=2, train_limit=128, batch_size=64, seed=7))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    damage(None, run.run_dir / "checkpoint.pt", how)
    assert run.run_dir.parent == runs
    before = store_refs()
    assert_clean_failure(run_cli(*args, "--resume"), 2, "checkpoint")
    assert store_refs() == before


ONNX_VARIANTS = ["zero", "garbage", "truncated", "renamed-input", "renamed-output", "no-metadata", "channels"]


@pytest.mark.parametrize("how", ONNX_VARIANTS)
def test_damaged_or_foreign_onnx_files_are_refused(run_cli, trained, tmp_path, how):
    exported = run_cli("export", trained, "--out", str(tmp_path / "good"))
    assert exported.exit_code == 0
    good = next((tmp_path / "good").glob("*.onnx"))
    bad = onnx_variant(good, tmp_path / f"{how}.onnx", how)
    before = store_refs(with_metrics=True)
    for args in (("check-onnx", str(bad), "--task", "synthetic"),):
        assert_clean_failure(run_cli(*args), 2, bad.name)
    assert store_refs(with_metrics=True) == before  # checking an outside file never changes a record


@pytest.mark.slow  # 7 s: an export again
def test_damaged_stored_onnx_is_exported_again(run_cli, trained, tmp_path):
    assert run_cli("export", trained, "--out", str(tmp_path / "x")).exit_code == 0
    with ModelStore() as store:
        artifact = store.get(trained).artifacts["onnx"]
    damage(artifact.path, artifact.path, "flip")
    result = run_cli("check-onnx", trained, "--format", "json")
    assert result.exit_code == 0 and "stored ONNX file" in result.stderr and "damaged" in result.stderr
    assert json.loads(result.stdout)["onnx"] == "re-exported (stored file damaged)"
    assert run_cli("registry", "check").exit_code == 0  # the damaged blob was replaced
    damage(artifact.path, artifact.path, "truncated")  # robustness takes the same path, and says so too
    robust = run_cli("robustness", trained, "--no-record", "--samples", "16", "--corruptions", "jpeg")
    assert robust.exit_code == 0 and "stored ONNX file" in robust.stderr and "damaged" in robust.stderr
    assert "replacing it in the store" not in robust.stderr  # --no-record writes nothing
    assert run_cli("registry", "check").exit_code == 1  # so the damaged file is still there to be found


def test_reimporting_over_a_damaged_blob_replaces_it(run_cli, trained, tmp_path):
    copy = tmp_path / "copy.safetensors"
    shutil.copyfile(_weights_file(trained), copy)
    assert run_cli("registry", "import", "cifar_convnet_s", str(copy), "--name", "first").exit_code == 0
    with ModelStore() as store:
        blob = store.get("first").artifacts["weights"].path
    damage(blob, blob, "flip")  # same size: only its sha256 tells
    assert run_cli("registry", "check").exit_code == 1
    again = run_cli("registry", "import", "cifar_convnet_s", str(copy), "--name", "again")
    assert again.exit_code == 0, again.output
    check = run_cli("registry", "check")
    assert check.exit_code == 0, check.stderr  # the new copy replaced the damaged one both versions share


@pytest.mark.parametrize("how", ["zero", "garbage", "truncated"])
def test_damaged_store_database(run_cli, trained, how):
    with ModelStore() as store:
        db, blobs = store.db_path, sorted(p.name for p in store.blobs.files())
    damage(db, db, how)
    check = run_cli("registry", "check")
    if how == "zero":  # an empty database: every file is unknown, reported, never collected
        assert check.exit_code == 1 and "has no record of" in check.stderr
        assert run_cli("registry", "list").exit_code == 0
        assert run_cli("registry", "import", "cifar_convnet_xs", str(_spare_weights(run_cli))).exit_code == 0
        assert run_cli("registry", "remove", "cifar_convnet_xs-spare").exit_code == 0  # runs gc
        with ModelStore() as store:
            assert set(blobs) <= {p.name for p in store.blobs.files()}
        repaired = run_cli("registry", "check", "--repair")
        assert repaired.exit_code == 0 and "lost+found" in repaired.stderr
    else:
        assert_clean_failure(check, 1, "damaged")
        for args in (("registry", "list"), ("leaderboard", "--task", "synthetic"), ("evaluate", trained)):
            assert_clean_failure(run_cli(*args), 1, "damaged")


def _spare_weights(run_cli) -> Path:
    import torch
    from helpers import make_plugins

    from harness.models import build_model

    path = Path(ModelStore().home).parent / "spare.safetensors"
    from safetensors.torch import save_file

    model = build_model(make_plugins().catalogue, "cifar_convnet_xs", 10)
    torch.manual_seed(3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize("how", ["zero", "truncated", "garbage"])
def test_damaged_dataset_files_are_named(run_cli, tmp_path, monkeypatch, how):
    from fileformats import write_cifar10, write_mnist_raw, write_svhn

    root = tmp_path / "data"
    write_mnist_raw(root, "MNIST")
    write_cifar10(root)
    write_svhn(root)
    targets = {"mnist": root / "MNIST" / "raw" / "t10k-images-idx3-ubyte",
               "cifar10": root / "cifar-10-batches-py" / "test_batch",
               "svhn": root / "test_32x32.mat"}
    for task, path in targets.items():
        damage(path, path, how)
        result = run_cli("finetune", "cifar_convnet_xs", "--task", task, "--epochs", "1", "--batch-size", "4",
                         "--data-dir", str(root))
        assert_clean_failure(result, 2, path.name)


def test_weights_of_another_architecture_are_refused_before_the_data_loads(run_cli, tmp_path):
    import torch

    path = tmp_path / "other.pth"  # a state dict of tensors, with a head, of some other net
    torch.save({"stem.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)},
               path)
    for args in (("finetune", str(path), "--backbone", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "1"),
                 ("finetune", "cifar_convnet_xs", "--weights", str(path), "--task", "synthetic", "--epochs", "1"),
                 ("evaluate", str(path), "--backbone", "cifar_convnet_xs", "--task", "synthetic")):
        result = run_cli(*args)
        assert_clean_failure(result, 2, "does not fit cifar_convnet_xs")
        assert "images at" not in result.output  # refused before the data loads and the plan is printed
