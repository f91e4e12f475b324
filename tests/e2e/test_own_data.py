"""Your own data as a task: image folders (flat or split), CSV/JSON-lines manifests, Hugging Face
datasets (a real ``save_to_disk`` folder and parquet files), saved tasks and task files, the cache
keyed by content, and every kind of bad input refused before anything is stored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from faultlib import assert_clean_failure
from fileformats import write_photos
from PIL import Image

from registry.store import ModelStore

FAST = ("--candidates", "cifar_convnet_xs", "--epochs", "1")


def _json(result):
    assert result.exit_code == 0, result.output[-3000:]
    return json.loads(result.stdout)


@pytest.mark.slow  # 11 s: a whole select, twice
def test_flat_folder_select_leaderboard_and_content_keyed_cache(own, tmp_path):
    photos = write_photos(tmp_path / "photos")
    result = own("select", "--data", str(photos), *FAST, "--format", "json")
    first = _json(result)
    assert first["task"] == "photos" and first["winner"] == "photos@1"
    # the plan and a measured estimate come before the first candidate trains
    plan = result.stderr.index("plan: 1 candidates x 1 epochs at 32px on ")
    assert plan < result.stderr.index("estimate: ") < result.stderr.index("fine-tune (seed 0)")
    assert "cifar_convnet_xs" in result.stderr.split("estimate: ")[1].splitlines()[0]
    assert 0 < first["estimate_seconds"] < 600
    (row,) = first["rows"]
    assert row["status"] == "ok" and row["parity"] == "passed"
    board = _json(own("leaderboard", "--data", str(photos), "--format", "json"))
    assert [r["model"] for r in board["rows"]] == ["photos@1"]
    cached = own("select", "--data", str(photos), *FAST, "--format", "json")
    again = _json(cached)
    assert again["rows"][0]["status"] == "cached" and "(1 already in the store)" in cached.stderr
    changed = photos / "cat" / "0.png"  # same name, other pixels: the cache must not serve it
    Image.fromarray(np.full((40, 48, 3), 255, np.uint8)).save(changed)
    third = _json(own("select", "--data", str(photos), *FAST, "--format", "json"))
    assert third["rows"][0]["status"] == "ok" and third["rows"][0]["model"] == "photos@2"


def test_test_split_is_made_stratified_and_seeded(tmp_path):
    from harness.data.sources import DataSpec, open_source

    photos = write_photos(tmp_path / "p", per_class=10)
    a, b = open_source(DataSpec(str(photos))), open_source(DataSpec(str(photos)))
    assert a.splits["test"] == b.splits["test"] and a.made_test_split
    per_class = [sum(1 for _, label in a.splits["test"] if label == k) for k in range(3)]
    assert per_class == [2, 2, 2] and a.count("train") == 24
    other = open_source(DataSpec(str(photos), seed=1))
    assert other.splits["test"] != a.splits["test"]


def test_split_folders_and_finetune_evaluate(own, tmp_path):
    photos = write_photos(tmp_path / "split", split=True)
    tuned = _json(own("finetune", "cifar_convnet_xs", "--data", str(photos), "--epochs", "1", "--batch-size", "8",
                      "--format", "json"))
    assert tuned["model"] == "split@1"
    scores = _json(own("evaluate", "split@1", "--data", str(photos), "--format", "json"))
    assert scores["samples"] == 9 and scores["task"] == "split"


def test_csv_and_jsonl_manifests(own, tmp_path):
    photos = write_photos(tmp_path / "imgs")
    rows = [(p.relative_to(tmp_path).as_posix(), p.parent.name, "test" if p.stem in ("0", "1") else "train")
            for p in sorted(photos.rglob("*.*"))]
    manifest = tmp_path / "labels.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "split"), *rows])
    tuned = _json(own("finetune", "cifar_convnet_xs", "--data", str(manifest), "--epochs", "1", "--batch-size", "8",
                      "--format", "json"))
    assert tuned["model"] == "labels@1"
    lines = tmp_path / "labels2.jsonl"
    lines.write_text("\n".join(json.dumps({"path": p, "label": label}) for p, label, _ in rows))
    from harness.data.sources import DataSpec, open_source

    source = open_source(DataSpec(str(lines)))
    assert source.class_names == ("cat", "dog", "emu") and source.made_test_split


def test_hugging_face_save_to_disk_and_parquet(own, tmp_path):
    datasets = pytest.importorskip("datasets")
    photos = write_photos(tmp_path / "p")
    files = sorted(photos.rglob("*.*"))
    features = datasets.Features({"img": datasets.Image(), "kind": datasets.ClassLabel(names=["cat", "dog", "emu"])})
    table = {"img": [str(p) for p in files], "kind": [["cat", "dog", "emu"].index(p.parent.name) for p in files]}
    full = datasets.Dataset.from_dict(table, features=features)
    parts = full.train_test_split(test_size=0.25, seed=0, stratify_by_column="kind")
    saved = tmp_path / "hfsaved"
    parts.save_to_disk(str(saved))
    tuned = _json(own("finetune", "cifar_convnet_xs", "--data", f"hf:{saved}", "--epochs", "1", "--batch-size", "8",
                      "--format", "json"))
    assert tuned["model"] == "hfsaved@1"
    parquet = tmp_path / "hfparquet"
    parquet.mkdir()
    parts["train"].to_parquet(str(parquet / "train-00000.parquet"))
    parts["test"].to_parquet(str(parquet / "test-00000.parquet"))
    from harness.data.sources import DataSpec, open_source

    source = open_source(DataSpec(f"hf:{parquet}", image_column="img", label_column="kind"))
    assert source.count("test") == 9 and source.class_names == ("cat", "dog", "emu")
    plain = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    plain.save_to_disk(str(tmp_path / "noimages"))
    assert_clean_failure(own("finetune", "cifar_convnet_xs", "--data", f"hf:{tmp_path / 'noimages'}"), 2,
                         "--image-column")


def test_saved_task_by_name_and_task_file(own, tmp_path):
    photos = write_photos(tmp_path / "mine")
    added = _json(own("task", "add", "shoes", "--data", str(photos), "--format", "json"))
    assert added[0]["classes"] == 3 and added[0]["input_size"] == 48
    listed = _json(own("list", "tasks", "--format", "json"))
    assert "shoes" in [t["name"] for t in listed]
    quick = next(t for t in listed if t["name"] == "shoes")["budgets"]["quick"]
    assert quick["input_size"] == 32 and quick["epochs"] == 30 and quick["candidates"][0] == "cifar_convnet_xs"
    shown = own("show", "shoes", "--kind", "task")
    assert "budgets.quick" in shown.stdout and "x 30 epochs at 32px" in shown.stdout
    refused = own("task", "add", "shoes", "--data", str(photos))
    assert_clean_failure(refused, 2, "--force")
    assert_clean_failure(own("task", "add", "cifar10", "--data", str(photos)), 2, "choose another name")
    project = tmp_path / "project"
    project.mkdir()
    task_file = project / "mytask.toml"
    task_file.write_text((Path(added[0]["file"])).read_text().replace(str(photos), "../mine"))
    from harness.data.datatask import read

    assert read(task_file).data.uri == str(photos.resolve())
    assert own("task", "remove", "shoes").exit_code == 0
    assert_clean_failure(own("task", "remove", "shoes"), 2, "saved task")


def test_task_add_decodes_every_image_or_says_it_did_not(own, tmp_path):
    photos = write_photos(tmp_path / "mine")
    added = own("task", "add", "shoes", "--data", str(photos))
    assert added.exit_code == 0 and "decoded all 36 images at 32px" in added.stderr
    broken = photos / "dog" / "3.jpg"
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated JPEG: lists and opens, does not decode
    refused = own("task", "add", "boots", "--data", str(photos))
    assert_clean_failure(refused, 2, "3.jpg")
    assert not (Path(added.stdout.split()[-1]).parent / "boots.toml").exists()
    unchecked = own("task", "add", "boots", "--data", str(photos), "--no-decode")
    assert unchecked.exit_code == 0 and "not decoded (--no-decode)" in unchecked.stderr


def test_file_names_that_are_not_utf8_work(own, tmp_path):
    import os

    photos = write_photos(tmp_path / "odd")
    folder = os.fsencode(photos / "cat")
    os.rename(os.path.join(folder, b"1.jpg"), os.path.join(folder, b"caf\xe9 1.jpg"))  # latin-1, as old cameras
    added = own("task", "add", "odd", "--data", str(photos))
    assert added.exit_code == 0, added.output[-2000:]
    assert "decoded all 36 images" in added.stderr


BAD_DATA = {
    "missing": (lambda root: root / "nope", "does not exist"),
    "empty folder": (lambda root: root.mkdir() or root, "no images"),
    "loose images": (lambda root: write_photos(root / "x", classes=("only",), per_class=2).parent
                     if False else _loose(root), "one sub-folder per class"),
    "one class": (lambda root: write_photos(root, classes=("only",), per_class=4), "at least 2"),
    "manifest with missing files": (lambda root: _manifest(root, "missing.png,cat\n"), "do not exist"),
    "manifest with an empty label": (lambda root: _manifest(root, "{img},\n"), "empty label"),
    "manifest without columns": (lambda root: _manifest(root, "", header="file,class"), "path,label"),
    "not a data file": (lambda root: _file(root / "notes.txt"), "manifest"),
    "test-only classes": (lambda root: _test_only(root), "train/ lacks"),
}


def _loose(root: Path) -> Path:
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a.png")
    return root


def _manifest(root: Path, body: str, header: str = "path,label") -> Path:
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "img.png")
    path = root / "m.csv"
    path.write_text(header + "\n" + body.replace("{img}", "img.png"))
    return path


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True)
    path.write_text("hello")
    return path


def _test_only(root: Path) -> Path:
    write_photos(root, split=True)
    extra = root / "test" / "yak"
    extra.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(extra / "y.png")
    return root


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_refused_before_anything_is_stored(own, tmp_path, case):
    make, needle = BAD_DATA[case]
    target = make(tmp_path / "data")
    for args in (("select", "--data", str(target), *FAST), ("task", "add", "bad", "--data", str(target))):
        assert_clean_failure(own(*args), 2, needle)
    with ModelStore() as store:
        assert store.list() == [] and not (store.home / "tasks" / "bad.toml").exists()


def test_decoded_splits_are_cached_on_disk_and_memory_mapped(own, tmp_path, monkeypatch):
    """The second process (here: a fresh plugin set, so no in-process cache) maps the file the
    first one decoded; a changed image makes a new entry."""
    import os

    from harness.data.cache import cache_root

    photos = write_photos(tmp_path / "cached")
    assert own("finetune", "cifar_convnet_xs", "--data", str(photos), "--epochs", "1", "--batch-size", "8"
               ).exit_code == 0
    entries = sorted(p.name for p in cache_root().iterdir() if not p.name.startswith("."))
    assert len(entries) == 2  # train and test at the task's size
    from harness.data import cache
    from harness.data.datatask import default_name, make_spec, protocol
    from harness.data.datatask import load_split as load
    from harness.data.sources import DataSpec

    spec = make_spec(default_name(str(photos)), DataSpec(str(photos)))
    size = protocol(spec).budgets["quick"].input_size  # what finetune's default (quick) budget trains at
    monkeypatch.setattr(cache, "IN_MEMORY_LIMIT", 0)  # as for a split too large for RAM: stay mapped
    again = load(spec, "train", Path("."), image_size=size)
    maps = Path("/proc/self/maps").read_text()
    assert any(str(cache_root() / e / "images.npy") in maps for e in entries)  # mapped, not read into RAM
    assert len(again) == 30
    before = os.stat(cache_root() / entries[0] / "images.npy").st_mtime_ns
    load(spec, "test", Path("."), image_size=size)
    assert os.stat(cache_root() / entries[0] / "images.npy").st_mtime_ns == before  # nothing decoded again
    Image.fromarray(np.full((40, 48, 3), 9, np.uint8)).save(photos / "dog" / "2.png")
    load(spec, "train", Path("."), image_size=size)
    assert len([p for p in cache_root().iterdir() if not p.name.startswith(".")]) == 3


def test_take_spills_large_selections_to_a_mapped_file(monkeypatch):
    import torch

    from harness.data import cache

    images = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    index = torch.tensor([5, 1, 60])
    monkeypatch.setattr(cache, "IN_MEMORY_LIMIT", 100)  # three rows (576 bytes) are "large" now
    taken = cache.take(images, index)
    assert torch.equal(taken, images[index])
    assert ".scratch-" in Path("/proc/self/maps").read_text()  # a mapped (and already unlinked) file
