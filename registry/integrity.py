"""``registry check`` and ``registry check --repair``: what is wrong with a store, and the repairs
that cannot lose anything.

Found: a database SQLite reports damaged; artifact files that are not regular files (a link, a
folder or a device put in their place: ``registry remove`` refuses those), missing, or no longer
matching their sha256; files in ``artifacts/`` the database has no record of (store.db replaced,
emptied or restored from an older backup); pending records of writers that died between placing a
file and committing. Repaired (``--repair``): a link to the right content is replaced by a copy of
it; any other non-regular file and every unknown file are *moved* to ``HOME/lost+found/`` (never
deleted); a damaged ONNX artifact's record is dropped (export or check-onnx re-creates it from the
weights); dead writers' pending files become garbage for ``gc``. A damaged weights file cannot be
repaired here: the message says which version to remove or which file to restore.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.store import ModelStore

LOST_AND_FOUND = "lost+found"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the store; ``repair`` says what ``--repair`` does about it (None: nothing)."""

    kind: str  # database | not-a-file | missing | altered | unknown-file | pending
    text: str
    repair: str | None = None


def find_problems(store: ModelStore) -> list[Problem]:
    """Everything wrong with ``store``, cheapest checks first."""
    problems = _database(store)
    if problems:
        return problems
    problems += _artifacts(store)
    problems += _unknown_files(store)
    problems += _stale_pending(store)
    return problems


def _database(store: ModelStore) -> list[Problem]:
    try:
        rows = [r[0] for r in store._conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.OperationalError:
        raise  # locked or busy: the machine's state, not damage
    except sqlite3.DatabaseError as exc:  # damaged past what SQLite's own check can walk
        rows = [str(exc)]
    if rows == ["ok"]:
        return []
    return [Problem("database", f"database: {'; '.join(rows[:3])}; restore {store.db_path.name} from a backup, or "
                    "move it aside and run 'harness registry check' to list the artifact files it referenced")]


def _artifacts(store: ModelStore) -> list[Problem]:
    from registry import keys

    problems = []
    for row in store._conn.execute("SELECT v.name, v.version, a.role, a.sha256, a.size"
                                   " FROM artifacts a JOIN versions v ON v.id = a.version_id"):
        ref, role = f"{row['name']}@{row['version']}", row["role"]
        path = store.blobs.path(row["sha256"])
        fix = ("--repair drops the record; 'harness export' re-creates it" if role == keys.ROLE_ONNX
               else None)
        odd = odd_kind(path)
        if odd is not None:
            problems.append(Problem("not-a-file", f"{ref}: {role} file {path} is {odd}, not a regular file (the "
                                    "store reads, writes and deletes only regular files)", _odd_fix(store, ref)))
        elif not path.is_file():
            problems.append(Problem("missing", f"{ref}: {role} file is missing ({path})",
                                    fix or f"restore the file or 'harness registry remove {ref}'"))
        elif path.stat().st_size != row["size"] or not store.blobs.verify(row["sha256"]):
            problems.append(Problem("altered", f"{ref}: {role} file does not match its sha256 ({path})",
                                    fix or f"restore the file or 'harness registry remove {ref}'"))
    return problems


def odd_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it exists but is not a regular file itself ("a symbolic link to ...", "a
    folder", "a device or other special file"); None for a regular file or nothing there."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return f"a symbolic link to {os.readlink(path)!r}"
    return "a folder" if stat.S_ISDIR(mode) else "a device or other special file"


def _odd_fix(store: ModelStore, ref: str) -> str:
    return (f"--repair replaces a link whose target matches the sha256 with a copy of that file and moves anything "
            f"else to {store.home / LOST_AND_FOUND}; then put the right file back or 'harness registry remove {ref}'")


def _repair_odd(store: ModelStore) -> list[str]:
    """Put each stored path that is not a regular file right without deleting anything: a link to the
    right content becomes a copy of it (written beside, renamed over the link); anything else is moved
    to ``lost+found`` (the version's file is then missing, and says so)."""
    from registry.files import sha256_file

    done = []
    for row in store._conn.execute("SELECT DISTINCT sha256 FROM artifacts"):
        path = store.blobs.path(row[0])
        odd = odd_kind(path)
        if odd is None:
            continue
        if odd.startswith("a symbolic link") and path.is_file() and sha256_file(path) == row[0]:
            tmp = path.with_name(f".{path.name}.repair")
            shutil.copyfile(path, tmp)
            os.replace(tmp, path)
            done.append(f"{path} was {odd}: replaced it with a copy of that file (its sha256 matches)")
            continue
        target = store.home / LOST_AND_FOUND
        target.mkdir(exist_ok=True)
        moved, n = target / path.name, 1
        while os.path.lexists(moved):
            moved, n = target / f"{path.name}.{n}", n + 1
        os.rename(path, moved)
        done.append(f"{path} was {odd}: moved it to {moved}")
    return done


def _known(store: ModelStore) -> set[str]:
    known = {r[0] for r in store._conn.execute("SELECT sha256 FROM known_blobs")}
    known |= {r[0] for r in store._conn.execute("SELECT sha256 FROM artifacts")}
    return known | {r[0] for r in store._conn.execute("SELECT sha256 FROM pending_blobs")}


def unknown_files(store: ModelStore) -> list[os.PathLike[str]]:
    """Blob files the database has no record of."""
    known = _known(store)
    return [p for p in store.blobs.files() if p.name not in known]


def _unknown_files(store: ModelStore) -> list[Problem]:
    found = unknown_files(store)
    if not found:
        return []
    return [Problem("unknown-file",
                    f"{len(found)} file(s) in {store.blobs.root} that the database has no record of (was store.db "
                    "replaced, emptied or restored from an older copy?); nothing deletes them",
                    f"restore store.db, or --repair moves them to {store.home / LOST_AND_FOUND}")]


def _stale_pending(store: ModelStore) -> list[Problem]:
    from registry.blobs import pending_alive

    rows = [r for r in store._conn.execute("SELECT * FROM pending_blobs") if not pending_alive(r)]
    if not rows:
        return []
    return [Problem("pending", f"{len(rows)} file(s) placed by writers that died before committing",
                    "--repair (or the next 'registry remove') collects them")]


def repair(store: ModelStore) -> list[str]:
    """Apply every safe repair; returns what was done, one line each."""
    from registry import keys

    done = _repair_odd(store)
    for problem in _artifacts(store):
        ref, _, rest = problem.text.partition(": ")
        if rest.startswith(f"{keys.ROLE_ONNX} "):
            version = store.get(ref)
            with store.transaction() as conn:
                conn.execute("DELETE FROM artifacts WHERE version_id = ? AND role = ?", (version.id, keys.ROLE_ONNX))
            done.append(f"{ref}: dropped the damaged ONNX record (re-export with 'harness export {ref}')")
    found = unknown_files(store)
    if found:
        target = store.home / LOST_AND_FOUND
        target.mkdir(exist_ok=True)
        for path in found:
            shutil.move(os.fspath(path), target / os.path.basename(path))
        done.append(f"moved {len(found)} unknown file(s) to {target}")
    stale = _stale_pending(store)
    collected = store.gc()
    if stale or collected:
        done.append(f"collected {collected} unreferenced file(s)")
    return done
