"""Fault injection, part 3 (issue 27): a removal that cannot finish changes nothing, and a bad file or
reference is told as what it is (malformed, a pickle, a missing version), never in another error's words.

Each case runs the real CLI in-process on a store holding one trained version (``synthetic@1``).
"""

from __future__ import annotations

import shutil

import pytest
from faultlib import assert_clean_failure, damage, store_refs

from registry.store import ModelStore


def _weights_blob(ref: str):
    with ModelStore() as store:
        return store.get(ref).artifacts["weights"].path


@pytest.mark.parametrize("what", ["folder", "symlink", "fifo"])
def test_remove_refuses_whole_when_a_stored_file_is_not_a_regular_file(run_cli, trained, tmp_path, what):
    import os

    blob = _weights_blob(trained)
    kept = tmp_path / "kept"
    shutil.move(blob, kept)
    if what == "folder":
        blob.mkdir()
        (blob / "inside").write_text("x")
    elif what == "symlink":
        blob.symlink_to(kept)
    else:
        os.mkfifo(blob)
    result = run_cli("registry", "remove", trained)
    said = {"folder": "is a folder", "symlink": "is a symbolic link", "fifo": "is not a regular file"}[what]
    assert_clean_failure(result, 1, f"cannot remove {trained}: its weights file")
    assert said in result.stderr and "nothing was removed" in result.stderr
    with ModelStore() as store:
        assert [v.ref for v in store.list()] == [trained]  # all or nothing: the version is still there
    if what == "folder":
        assert (blob / "inside").read_text() == "x"
    shutil.rmtree(blob) if blob.is_dir() and not blob.is_symlink() else blob.unlink()
    shutil.move(kept, blob)
    assert run_cli("registry", "remove", trained).exit_code == 0  # put right, the same command works
    with ModelStore() as store:
        assert store.list() == [] and not blob.exists()


@pytest.mark.parametrize("what", ["folder", "symlink", "fifo", "matching-symlink"])
def test_check_names_a_stored_file_that_is_not_regular_and_repair_makes_remove_work(run_cli, trained, tmp_path,
                                                                                     what):
    """'registry remove' points at 'registry check': check names the kind (not "ok", not "missing ->
    registry remove"), and --repair either replaces a link to the right file with a copy of it or
    moves the odd path to lost+found, after which the remove works."""
    import os

    blob = _weights_blob(trained)
    kept = tmp_path / "kept"
    shutil.move(blob, kept)
    if what == "folder":
        blob.mkdir()
    elif what == "fifo":
        os.mkfifo(blob)
    else:
        blob.symlink_to(kept if what == "matching-symlink" else tmp_path / "elsewhere")
    checked = run_cli("registry", "check")
    said = {"folder": "is a folder", "fifo": "is a device or other special file"}.get(what, "is a symbolic link")
    assert checked.exit_code == 1 and said in checked.stderr and "not a regular file" in checked.stderr
    assert "--repair" in checked.stderr and "missing" not in checked.stderr
    # the advice says what to do after the repair, not only to run the check again
    assert f"put the right file back or 'harness registry remove {trained}'" in checked.stderr
    repaired = run_cli("registry", "check", "--repair")
    assert "repaired: " in repaired.stderr, repaired.output
    if what == "matching-symlink":  # the link became a copy of the right file: nothing is lost
        assert repaired.exit_code == 0 and blob.is_file() and not blob.is_symlink(), repaired.output
    else:  # moved aside, never deleted: the version's file is now missing, and remove works
        assert os.path.lexists(tmp_path / "trained-home" / "lost+found" / blob.name)
        assert repaired.exit_code == 1 and "file is missing" in repaired.stderr
    assert run_cli("registry", "remove", trained).exit_code == 0
    with ModelStore() as store:
        assert store.list() == []


def test_gc_leaves_a_folder_in_an_unreferenced_files_place_and_goes_on(trained, tmp_path):
    """Replacing a version's ONNX file collects the old one; a folder in its place is left alone (for
    'registry check' to report) and the replacement completes."""
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    with ModelStore() as store:
        store.add_artifact(trained, "onnx", first)
        old = store.get(trained).artifacts["onnx"].path
        old.unlink()
        old.mkdir()
        store.add_artifact(trained, "onnx", second)
        assert old.is_dir() and store.get(trained).artifacts["onnx"].path.read_bytes() == b"second"


@pytest.mark.parametrize("how", ["garbage", "truncated", "zero"])
def test_registry_import_of_a_malformed_safetensors_file_says_so(run_cli, trained, tmp_path, how):
    bad = damage(_weights_blob(trained), tmp_path / f"{how}.safetensors", how)
    before = store_refs()
    result = run_cli("registry", "import", "cifar_convnet_s", str(bad))
    assert_clean_failure(result, 2, "is a malformed .safetensors file")
    assert "convert it to .safetensors" not in result.stderr
    assert store_refs() == before


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_malformed_safetensors_file_given_as_model_is_told_in_the_same_words(run_cli, trained, tmp_path, how):
    """A damaged .safetensors file as MODEL (its metadata read to find the backbone) gets the message
    'registry import' gives, with the fix, not safetensors' bare deserializing error."""
    bad = damage(_weights_blob(trained), tmp_path / f"{how}.safetensors", how)
    evaluated = run_cli("evaluate", str(bad))
    imported = run_cli("registry", "import", "cifar_convnet_s", str(bad))
    for result in (evaluated, imported):
        assert_clean_failure(result, 2, f"{str(bad)!r} is a malformed .safetensors file (")
        assert "save the weights again" in result.stderr and "as safetensors" not in result.stderr
    assert evaluated.stderr == imported.stderr


def test_a_pickle_is_refused_without_torchs_advice_to_unpickle_it(run_cli, trained, tmp_path):
    bad = damage(None, tmp_path / "payload.pth", "pickle-payload")
    for args in (("registry", "import", "cifar_convnet_s", str(bad)),
                 ("evaluate", str(bad), "--backbone", "cifar_convnet_s", "--task", "synthetic")):
        result = run_cli(*args)
        assert_clean_failure(result, 2, "is not a checkpoint of plain tensors")
        assert "weights_only" not in result.output and "harness never loads" in result.stderr


def test_a_missing_version_is_called_that_not_an_unknown_backbone(run_cli, trained):
    for args in (("select", "--task", "synthetic", "--candidates", "synthetic@999"),
                 ("evaluate", "synthetic@999"), ("finetune", "synthetic@999", "--task", "synthetic")):
        result = run_cli(*args)
        assert_clean_failure(result, 2, "no version 999 of synthetic (latest: 1)")
        assert "backbone" not in result.stderr
