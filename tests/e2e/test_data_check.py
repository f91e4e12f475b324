"""``harness data check`` on planted problems (each found, nothing else flagged), on a registered
dataset, writing a clean manifest that select then trains on, and select refusing leaked data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from faultlib import assert_clean_failure
from fileformats import write_photos
from PIL import Image


def planted(root: Path) -> Path:
    """A split folder with one of each problem the check looks for."""
    write_photos(root, split=True, per_class=16)
    shutil.copy(root / "train/cat/1.jpg", root / "test/cat/copy-of-1.jpg")                   # exact leakage
    # a near copy, relabelled
    # q95: at q85 this noisy synthetic photo sits at 0.026, just past NEAR_LIMIT, with Pillow 13's encoder
    Image.open(root / "train/dog/2.png").convert("RGB").save(root / "test/emu/again.jpg", quality=95)
    (root / "train/cat/empty.png").write_bytes(b"")                                           # zero bytes
    (root / "train/dog/cut.jpg").write_bytes((root / "train/dog/3.jpg").read_bytes()[:300])  # truncated
    shutil.copy(root / "train/emu/6.png", root / "train/emu/really-png.jpg")                 # extension; exact dup
    Image.fromarray(np.zeros((6, 40, 3), np.uint8)).save(root / "train/emu/sliver.png")     # small, aspect
    return root


def _findings(result) -> dict[str, dict]:
    report = json.loads(result.stdout)
    return {f["check"]: f for f in report["findings"]}


def test_every_planted_problem_is_found_and_nothing_else(own, tmp_path):
    root = planted(tmp_path / "planted")
    result = own("data", "check", str(root), "--format", "json")
    assert result.exit_code == 1  # errors: broken files, exact leakage
    found = _findings(result)
    assert found["integrity"]["severity"] == "error" and found["integrity"]["count"] == 2
    assert {Path(i).name for i in found["integrity"]["items"]} == {"empty.png", "cut.jpg"}
    assert found["exact-leakage"]["severity"] == "error" and found["exact-leakage"]["count"] == 1
    assert "copy-of-1.jpg" in found["exact-leakage"]["items"][0]
    assert found["near-leakage"]["count"] == 1 and "labels differ" in found["near-leakage"]["items"][0]
    assert found["exact-duplicates"]["count"] == 1 and "really-png.jpg" in found["exact-duplicates"]["items"][0]
    assert [Path(i).name for i in found["extension"]["items"]] == ["really-png.jpg"]
    assert [Path(i).name for i in found["size"]["items"]] == ["sliver.png"]
    assert [Path(i).name for i in found["aspect"]["items"]] == ["sliver.png"]
    assert "near-duplicates" not in found  # the clean images are not near copies of each other


def test_clean_data_has_no_findings_but_balance(own, tmp_path):
    result = own("data", "check", str(write_photos(tmp_path / "clean")), "--format", "json")
    assert result.exit_code == 0
    assert {f["check"] for f in json.loads(result.stdout)["findings"]} == {"balance"}


def test_write_clean_manifest_then_select_trains_on_it(own, tmp_path):
    root = planted(tmp_path / "p")
    manifest = tmp_path / "clean.csv"
    assert own("data", "check", str(root), "--write-clean", str(manifest)).exit_code == 1
    names = manifest.read_text()
    assert "empty.png" not in names and "cut.jpg" not in names and "copy-of-1.jpg" in names
    assert "train/cat/1.jpg" not in names  # the training copy of a leaked test image goes
    assert sorted(p.name for p in root.rglob("*.*"))  # the user's files are untouched
    assert (root / "train/cat/empty.png").exists()
    checked = own("data", "check", str(manifest), "--format", "json")
    assert checked.exit_code == 0, checked.output
    selected = own("select", "--data", str(manifest), "--candidates", "cifar_convnet_xs", "--epochs", "1",
                   "--format", "json")
    assert selected.exit_code == 0 and json.loads(selected.stdout)["winner"] == "clean@1"


def test_select_refuses_exact_leakage_unless_told(own, tmp_path):
    root = write_photos(tmp_path / "leaky", split=True)
    shutil.copy(root / "train/dog/1.jpg", root / "test/dog/leaked.jpg")
    args = ("select", "--data", str(root), "--candidates", "cifar_convnet_xs", "--epochs", "1")
    assert_clean_failure(own(*args), 2, "exact copies of training images")
    assert own(*args, "--ignore-data-errors").exit_code == 0


def test_registered_dataset_and_task_file(own, tmp_path):
    result = own("data", "check", "synthetic", "--format", "json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["images"] == {"train": 1000, "test": 300}
    assert_clean_failure(own("data", "check", "nosuchthing"), 2, "unknown")
