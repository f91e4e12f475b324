"""The model store: references, aliases, lineage, concurrency and crash consistency."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import ROOT

from registry import UnknownNameError, UsageError, keys
from registry.files import TMP_PREFIX
from registry.store import ModelStore


@pytest.fixture
def store(tmp_path):
    with ModelStore(tmp_path / "home") as s:
        yield s


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_register_resolve_alias_tags_lineage(store, tmp_path):
    w1 = _file(tmp_path, "a.bin", b"one")
    base = store.register("resnet18.tv_in1k", backbone="resnet18", kind="pretrained", files={"weights": w1})
    v1 = store.register("fashion-mnist", backbone="resnet18", kind="finetune", parent=base.ref,
                        files={"weights": _file(tmp_path, "b.bin", b"two")}, task="fashion-mnist",
                        metrics={"test": {"accuracy": 0.9}}, alias="best", seed=3)
    v2 = store.register("fashion-mnist", backbone="cifar_resnet20", kind="finetune",
                        files={"weights": _file(tmp_path, "c.bin", b"three")})
    assert (v1.version, v2.version) == (1, 2)
    assert store.get("fashion-mnist").ref == "fashion-mnist@2"
    assert store.get("fashion-mnist:best").ref == "fashion-mnist@1"
    assert store.get("fashion-mnist@1").parent_ref == "resnet18.tv_in1k@1"
    assert [v.ref for v in store.lineage("fashion-mnist:best")] == ["fashion-mnist@1", "resnet18.tv_in1k@1"]
    moved = store.set_alias("fashion-mnist@2", "best")
    assert moved.aliases == ("best",) and store.get("fashion-mnist:best").version == 2
    assert store.get("fashion-mnist@1").aliases == ()
    store.set_tags("fashion-mnist@1", {"owner": "ml-team"})
    assert store.get("fashion-mnist@1").tags == {"owner": "ml-team"}
    art = store.get("fashion-mnist@1").artifacts["weights"]
    assert art.path.read_bytes() == b"two" and art.size == 3
    merged = store.update_metrics("fashion-mnist@1", {"eval": {"accuracy": 0.91}})
    assert merged.metrics == {"test": {"accuracy": 0.9}, "eval": {"accuracy": 0.91}}


def test_unknown_references_suggest(store, tmp_path):
    store.register("fashion-mnist", backbone="x", kind="import", files={"weights": _file(tmp_path, "a", b"1")})
    with pytest.raises(UnknownNameError, match="did you mean 'fashion-mnist'"):
        store.get("fashion-mnsit")
    with pytest.raises(UnknownNameError, match="has versions 1"):
        store.get("fashion-mnist@7")
    with pytest.raises(UnknownNameError, match="aliases: none"):
        store.get("fashion-mnist:prod")
    with pytest.raises(UsageError, match="bad model reference"):
        store.get("a@b@c")
    with pytest.raises(UsageError, match="bad model name"):
        store.register("bad name", backbone="x", kind="import", files={})


def test_remove_refuses_parents_and_collects_blobs(store, tmp_path):
    parent = store.register("p", backbone="x", kind="import", files={"weights": _file(tmp_path, "a", b"p")})
    child = store.register("c", backbone="x", kind="finetune", parent=parent.ref,
                           files={"weights": _file(tmp_path, "b", b"c")})
    with pytest.raises(UsageError, match="parent of c@1"):
        store.remove("p@1")
    store.remove("c@1")
    assert not child.artifacts["weights"].path.exists()
    store.remove("p@1")
    assert store.list() == [] and store.check() == []


def test_a_removed_number_is_never_given_again_so_old_references_keep_their_meaning(store, tmp_path):
    for i in range(3):
        store.register("m", backbone="x", kind="import", files={"weights": _file(tmp_path, f"w{i}", bytes([i]))})
    store.remove("m@3")
    store.remove("m@2")
    again = store.register("m", backbone="x", kind="import", files={"weights": _file(tmp_path, "w9", b"new")})
    assert again.version == 4 and again.id == 4  # neither the number nor the row id of m@2/m@3
    with pytest.raises(UnknownNameError):
        store.get("m@3")
    assert [v.version for v in store.list("m")] == [1, 4]
    assert store.register("other", backbone="x", kind="import",
                          files={"weights": _file(tmp_path, "o", b"o")}).version == 1  # per name


def test_a_store_made_before_the_counters_goes_on_from_its_highest_number(tmp_path):
    import sqlite3

    home = tmp_path / "home"
    with ModelStore(home) as store:
        for i in range(2):
            store.register("m", backbone="x", kind="import", files={"weights": _file(tmp_path, f"w{i}", bytes([i]))})
    with sqlite3.connect(home / "store.db") as conn:  # as an older harness left it
        conn.execute("DROP TABLE counters")
    with ModelStore(home) as store:
        assert store.register("m", backbone="x", kind="import",
                              files={"weights": _file(tmp_path, "w2", b"2")}).version == 3
        assert store.check() == []


def test_a_parent_removed_while_its_child_trains_is_named_not_linked_and_nothing_is_lost(store, tmp_path):
    parent = store.register("p", backbone="x", kind="import", files={"weights": _file(tmp_path, "a", b"p")})
    store.remove(parent.ref)  # `registry remove` in another shell, while a fine-tune from p@1 runs
    child = store.register("c", backbone="x", kind="finetune", parent=parent,
                           files={"weights": _file(tmp_path, "b", b"c")})
    assert child.parent_id is None and child.tags[keys.TAG_PARENT_REMOVED] == "p@1"
    assert child.id != parent.id  # never its own parent through a reused row id
    assert store.check() == []


def test_identical_artifacts_are_stored_once(store, tmp_path):
    a = store.register("m", backbone="x", kind="import", files={"weights": _file(tmp_path, "a", b"same")})
    b = store.register("m", backbone="x", kind="import", files={"weights": _file(tmp_path, "b", b"same")})
    assert a.artifacts["weights"].path == b.artifacts["weights"].path
    assert store.find_by_sha256(a.artifacts["weights"].sha256).ref == "m@1"


WRITER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from registry.store import ModelStore
    home, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = ModelStore(home)
    work = Path(home).parent / f"work-{{tag}}"
    work.mkdir(exist_ok=True)
    for i in range(count):
        path = work / f"w{{i}}.bin"
        path.write_bytes(os.urandom(int(sys.argv[4])))
        store.register("shared", backbone="x", kind="import", files={{"weights": path}}, tags={{"writer": tag}})
""")


def _writer(tmp_path: Path) -> Path:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT)))
    return script


def test_eight_processes_register_fifty_versions_each(tmp_path):
    script, home = _writer(tmp_path), tmp_path / "home"
    ModelStore(home).close()
    procs = [subprocess.Popen([sys.executable, str(script), str(home), str(k), "50", "64"],
                              stderr=subprocess.PIPE, text=True) for k in range(8)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with ModelStore(home) as store:
        versions = [v.version for v in store.list("shared")]
        assert versions == list(range(1, 401))
        assert sorted(v.tags["writer"] for v in store.list("shared")).count("0") == 50
        assert store.check() == []


def test_killed_writers_leave_the_store_consistent(tmp_path):
    script, home = _writer(tmp_path), tmp_path / "home"
    ModelStore(home).close()
    rng = random.Random(0)
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(home), f"k{round_}", "1000", "300000"])
        time.sleep(0.6 + rng.random() * 0.8)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with ModelStore(home) as store:  # opening sweeps the dead writers' temporaries
        assert store.check() == []
        versions = [v.version for v in store.list("shared")]
        assert versions == list(range(1, len(versions) + 1)) and versions
        for v in store.list("shared"):
            assert v.artifacts["weights"].size == 300000
        leftovers = [p for p in (home / "artifacts").rglob(f"{TMP_PREFIX}*")]
        assert leftovers == []
