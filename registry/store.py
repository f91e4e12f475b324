"""The model store: every model version, its lineage, aliases, tags, metrics and artifact files.

SQLite in WAL mode with a busy timeout; every write is one ``BEGIN IMMEDIATE`` transaction (plain
deferred transactions make concurrent writers fail with "database is locked" despite the timeout).
Artifact files go into a content-addressed folder *before* the transaction that references them,
so a process killed at any point leaves either a complete version or none. A writer first records
each blob it is about to place as *pending* (committed), so a concurrent ``remove`` never collects
a blob an in-flight registration placed; garbage collection deletes only blobs the database itself
recorded (``known_blobs``) that nothing references and no live writer has pending, so a lost or
emptied database never makes it delete files it does not know (``registry check`` reports them).
Temporaries of dead writers are swept whenever the store opens.

A model *name* groups versions made for one purpose (``fashion-mnist`` holds every model trained
for that task); versions are numbered 1, 2, 3... per name without gaps. References:
``name`` (latest), ``name@3``, ``name:alias``.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from registry import blobs, keys
from registry.errors import StoreError, UnknownNameError, UsageError
from registry.files import BlobStore, is_regular, sweep_temporaries
from registry.records import AliasMove, Artifact, ModelVersion

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
REF_RE = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<version>\d+)|:(?P<alias>[^@:]+))?$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    backbone TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_id INTEGER REFERENCES versions(id) ON DELETE SET NULL,
    task TEXT,
    dataset TEXT,
    num_classes INTEGER,
    class_names TEXT,
    recipe TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    environment TEXT NOT NULL DEFAULT '{}',
    seed INTEGER,
    device TEXT,
    created_at REAL NOT NULL,
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS alias_moves (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    from_ref TEXT,
    to_ref TEXT,
    at REAL NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    command TEXT
);
CREATE TABLE IF NOT EXISTS tags (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (version_id, role)
);
CREATE INDEX IF NOT EXISTS artifacts_sha ON artifacts(sha256);
CREATE TABLE IF NOT EXISTS known_blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_blobs (
    sha256 TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (sha256, host, pid)
);
"""



def default_home() -> Path:
    """``$HARNESS_HOME``, else the user data dir (``~/.local/share/harness`` on Linux)."""
    if os.environ.get("HARNESS_HOME"):
        return Path(os.environ["HARNESS_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("harness"))


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    match = REF_RE.match(ref)
    if not match:
        raise UsageError(f"bad model reference {ref!r}; use NAME, NAME@VERSION or NAME:ALIAS")
    version = match.group("version")
    return match.group("name"), int(version) if version else None, match.group("alias")


class ModelStore:
    """The persistent store under ``home``: ``store.db`` and ``artifacts/``."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.blobs = BlobStore(self.home / "artifacts")
        self.db_path = self.home / "store.db"
        self.read_only = False
        self._checked = False  # quick_check passed (see require_writable)
        try:
            self._conn = self._open()
        except sqlite3.OperationalError:
            raise  # locked, disk full, read-only: the machine's state, not damage (the CLI says which)
        except sqlite3.DatabaseError as exc:
            raise damaged(self.db_path, exc) from None
        except OSError as exc:
            raise StoreError(f"cannot use the model store folder {str(self.home)!r}: {exc.strerror or exc}; "
                             "point HARNESS_HOME at a writable folder") from None

    def _open(self) -> sqlite3.Connection:
        if self.home.exists() and not self.home.is_dir():
            raise UsageError(f"the model store folder {str(self.home)!r} is a file; point HARNESS_HOME at a folder")
        if self.home.is_dir() and not os.access(self.home, os.W_OK) and self.db_path.is_file():
            return self._open_read_only()
        self.home.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        for _ in range(50):  # switching to WAL needs a moment without other writers
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                time.sleep(0.1)
        self._conn = conn
        with self.transaction() as c:
            had_blob_table = c.execute("SELECT 1 FROM sqlite_master WHERE name = 'known_blobs'").fetchone()
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            if not had_blob_table:  # a store written before blobs were recorded: adopt what it references
                c.execute("INSERT OR IGNORE INTO known_blobs (sha256, size) SELECT sha256, size FROM artifacts")
            blobs.adopt_dead_writers(c)
        sweep_temporaries(self.blobs.root)
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """A home the user cannot write to (a shared, mounted store) still serves reading commands;
        a write then fails with a :class:`StoreError` saying so."""
        self.read_only = True
        conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                               isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT COUNT(*) FROM versions").fetchone()
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_writable(self) -> None:
        """Refuse up front, before any training, when this store cannot be written: read-only for
        this user, or a database damaged past the pages opening it reads (checked once per store
        object with SQLite's ``quick_check``, milliseconds for a store of thousands of versions), so
        that a damaged store is found before the work whose result it could not record."""
        if self.read_only:
            raise StoreError(f"the model store {str(self.home)!r} is read-only for you; point HARNESS_HOME at a "
                             "writable folder to change it")
        if not self._checked:
            try:
                found = [r[0] for r in self._conn.execute("PRAGMA quick_check(3)").fetchall()]
            except sqlite3.OperationalError:
                raise  # locked or busy: the machine's state, not damage
            except sqlite3.DatabaseError as exc:
                raise damaged(self.db_path, exc) from None
            if found != ["ok"]:
                raise damaged(self.db_path, "; ".join(found))
            self._checked = True

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so writers queue instead of failing."""
        self.require_writable()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise damaged(self.db_path, exc) from None
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------

    def register(self, name: str, *, backbone: str, kind: str, files: Mapping[str, str | os.PathLike[str]],
                 parent: ModelVersion | str | int | None = None, task: str | None = None,
                 dataset: str | None = None,
                 num_classes: int | None = None, class_names: tuple[str, ...] | None = None,
                 recipe: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                 environment: Mapping[str, Any] | None = None, seed: int | None = None,
                 device: str | None = None, tags: Mapping[str, str] | None = None,
                 alias: str | None = None,
                 artifact_meta: Mapping[str, Mapping[str, Any]] | None = None) -> ModelVersion:
        """Add the next version of ``name``: copy ``files`` in, then record it in one transaction.

        Numbers are never given twice: after ``remove`` of ``name@3`` the next version is ``@4``, so
        a reference in a log, an alias's history or a deployment never comes to mean another model.
        A ``parent`` (a version, its id or a reference) removed while this version was being made
        (a fine-tune from it was running) is recorded as the :data:`~registry.keys.TAG_PARENT_REMOVED`
        tag instead of a link: the new version is kept, not lost to a failed insert."""
        self.check_name_and_alias(name, alias)
        parent_id, parent_ref = self._parent(parent)
        tags = dict(tags or {})
        with blobs.placing(self, files) as stored, self.transaction() as conn:
            if parent_id is not None and not conn.execute("SELECT 1 FROM versions WHERE id = ?",
                                                          (parent_id,)).fetchone():
                tags[keys.TAG_PARENT_REMOVED] = parent_ref or f"id {parent_id}"
                parent_id = None
            version = self._issue(conn, f"version:{name}", "SELECT MAX(version) FROM versions WHERE name = ?", name)
            version_id = self._issue(conn, "version_id", "SELECT MAX(id) FROM versions")
            conn.execute(
                "INSERT INTO versions (id, name, version, backbone, kind, parent_id, task, dataset, num_classes,"
                " class_names, recipe, metrics, environment, seed, device, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (version_id, name, version, backbone, kind, parent_id, task, dataset, num_classes,
                 json.dumps(list(class_names)) if class_names else None, json.dumps(recipe or {}),
                 json.dumps(metrics or {}), json.dumps(environment or {}), seed, device, time.time()),
            )
            for role, (sha, size) in stored.items():
                meta = json.dumps(dict((artifact_meta or {}).get(role, {})))
                conn.execute("INSERT INTO artifacts (version_id, role, sha256, size, meta) VALUES (?, ?, ?, ?, ?)",
                             (version_id, role, sha, size, meta))
            for key, value in tags.items():
                conn.execute("INSERT INTO tags (version_id, key, value) VALUES (?, ?, ?)", (version_id, key, value))
            blobs.adopt(conn, stored)
            if alias is not None:
                conn.execute("INSERT OR REPLACE INTO aliases (name, alias, version_id) VALUES (?, ?, ?)",
                             (name, alias, version_id))
        return self.get(f"{name}@{version}")

    @staticmethod
    def _issue(conn: sqlite3.Connection, key: str, highest: str, *args: Any) -> int:
        """The next number for ``key``: one more than both the highest in use (``highest``, a query)
        and the highest ever given (the ``counters`` table; a store made before it has none), so a
        removed number is never given again. Called inside the registering transaction."""
        row = conn.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
        used = conn.execute(highest, args).fetchone()[0]
        number = max(int(row[0]) if row else 0, int(used or 0)) + 1
        conn.execute("INSERT INTO counters (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                     (key, number, number))
        return number

    def _parent(self, parent: ModelVersion | str | int | None) -> tuple[int | None, str | None]:
        """(id, reference) of ``parent``; a reference is resolved now, before the files are placed."""
        if parent is None:
            return None, None
        if isinstance(parent, ModelVersion):
            return parent.id, parent.ref
        if isinstance(parent, int):
            return parent, None
        found = self.get(parent)
        return found.id, found.ref

    def check_name_and_alias(self, name: str | None, alias: str | None) -> None:
        """Refuse a bad model name or alias (before hours of training, not after)."""
        if name is not None and not NAME_RE.match(name):
            raise UsageError(f"bad model {{param}} {name!r}: use letters, digits, '.', '_' and '-'", param="name")
        if alias is not None:
            self._check_alias(alias)

    def _check_alias(self, alias: str) -> None:
        if not ALIAS_RE.match(alias) or alias.isdigit():
            raise UsageError(f"bad {{param}} {alias!r}: start with a letter; letters, digits, '_' and '-'",
                             param="alias")

    def set_alias(self, ref: str, alias: str, *, evidence: Mapping[str, Any] | None = None,
                  command: str | None = None, expect: str | None = None) -> ModelVersion:
        """Point ``name:alias`` at ``ref`` (moving it if it pointed elsewhere), and record the move
        (when, from which version, ``evidence``, ``command``) in the alias's history, in the same
        transaction. With ``expect`` (a ref, or ``""`` for "no holder") the move happens only if
        the alias still points there: a gate that compared against one holder never replaces
        another that a concurrent promotion put in place."""
        self._check_alias(alias)
        mv = self.get(ref)
        with self.transaction() as conn:
            row = conn.execute("SELECT v.name, v.version FROM aliases a JOIN versions v ON v.id = a.version_id "
                               "WHERE a.name = ? AND a.alias = ?", (mv.name, alias)).fetchone()
            before = f"{row[0]}@{row[1]}" if row else None
            if expect is not None and (before or "") != expect:
                raise UsageError(f"{mv.name}:{alias} moved meanwhile (now {before or 'unset'}, compared against "
                                 f"{expect or 'no holder'}); run the gate again")
            conn.execute("INSERT OR REPLACE INTO aliases (name, alias, version_id) VALUES (?, ?, ?)",
                         (mv.name, alias, mv.id))
            if before != mv.ref:
                self._record_move(conn, mv.name, alias, before, mv.ref, evidence, command)
        return self.get(mv.ref)

    def remove_alias(self, name: str, alias: str, *, command: str | None = None) -> None:
        with self.transaction() as conn:
            row = conn.execute("SELECT v.name, v.version FROM aliases a JOIN versions v ON v.id = a.version_id "
                               "WHERE a.name = ? AND a.alias = ?", (name, alias)).fetchone()
            cur = conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            if cur.rowcount:
                self._record_move(conn, name, alias, f"{row[0]}@{row[1]}" if row else None, None, None, command)
        if cur.rowcount == 0:
            raise UnknownNameError(f"alias of {name}", alias, self._aliases_of(name))

    @staticmethod
    def _record_move(conn: sqlite3.Connection, name: str, alias: str, before: str | None, after: str | None,
                     evidence: Mapping[str, Any] | None, command: str | None) -> None:
        conn.execute("INSERT INTO alias_moves (name, alias, from_ref, to_ref, at, evidence, command) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, alias, before, after, time.time(),
                                                      json.dumps(dict(evidence or {}), default=str), command))

    def alias_history(self, name: str, alias: str) -> list[AliasMove]:
        """Every recorded move of ``name:alias``, oldest first (moves made before history was kept
        are not there)."""
        rows = self._conn.execute("SELECT id, name, alias, from_ref, to_ref, at, evidence, command FROM alias_moves "
                                  "WHERE name = ? AND alias = ? ORDER BY id", (name, alias)).fetchall()
        return [AliasMove(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows]

    def set_tags(self, ref: str, tags: Mapping[str, str | None]) -> ModelVersion:
        """Set (or, with a ``None`` value, delete) free-form tags."""
        mv = self.get(ref)
        with self.transaction() as conn:
            for key, value in tags.items():
                if value is None:
                    conn.execute("DELETE FROM tags WHERE version_id = ? AND key = ?", (mv.id, key))
                else:
                    conn.execute("INSERT OR REPLACE INTO tags (version_id, key, value) VALUES (?, ?, ?)",
                                 (mv.id, key, value))
        return self.get(mv.ref)

    def update_metrics(self, ref: str, metrics: Mapping[str, Any]) -> ModelVersion:
        """Merge ``metrics`` into the version's metrics (evaluation results arrive later)."""
        mv = self.get(ref)
        with self.transaction() as conn:
            row = conn.execute("SELECT metrics FROM versions WHERE id = ?", (mv.id,)).fetchone()
            merged = {**json.loads(row[0]), **metrics}
            conn.execute("UPDATE versions SET metrics = ? WHERE id = ?", (json.dumps(merged), mv.id))
        return self.get(mv.ref)

    def add_artifact(self, ref: str, role: str, path: str | os.PathLike[str],
                     meta: Mapping[str, Any] | None = None) -> ModelVersion:
        """Attach (or replace) one artifact file of an existing version."""
        mv = self.get(ref)
        with blobs.placing(self, {role: path}) as stored, self.transaction() as conn:
            sha, size = stored[role]
            conn.execute("INSERT OR REPLACE INTO artifacts (version_id, role, sha256, size, meta) "
                         "VALUES (?, ?, ?, ?, ?)", (mv.id, role, sha, size, json.dumps(dict(meta or {}))))
            blobs.adopt(conn, stored)
        self.gc()  # the file it replaced may now be unreferenced
        return self.get(mv.ref)

    def remove(self, ref: str, force: bool = False, *, command: str | None = None) -> ModelVersion:
        """Delete a version (its blobs go when nothing else uses them). Children, and aliases it
        holds (``production`` vanishing silently would let any candidate pass a gate as a first
        promotion), need ``force``; the aliases it held are recorded as moved to nothing."""
        mv = self.get(ref)
        children = self._conn.execute("SELECT name, version FROM versions WHERE parent_id = ?", (mv.id,)).fetchall()
        if children and not force:
            names = ", ".join(f"{r['name']}@{r['version']}" for r in children)
            raise UsageError(f"{mv.ref} is the parent of {names}; pass {{param}} to remove it anyway", param="force")
        if mv.aliases and not force:
            held = ", ".join(f"{mv.name}:{a}" for a in mv.aliases)
            raise UsageError(f"{mv.ref} holds {held}; move the alias first (harness gate --apply, harness registry "
                             "rollback or tag --alias) or pass {param} to remove it and unset the alias", param="force")
        self.require_writable()
        self._check_deletable(mv)
        with self.transaction() as conn:
            for alias in mv.aliases:
                self._record_move(conn, mv.name, alias, mv.ref, None, {"removed": mv.ref}, command)
            conn.execute("DELETE FROM versions WHERE id = ?", (mv.id,))
        self.gc()
        return mv

    def _check_deletable(self, mv: ModelVersion) -> None:
        """Refuse, before anything changes, when a file removing ``mv`` would delete is not a regular file
        (a folder, a link, a device): it could not be deleted, and half a removal is worse than none."""
        shared = {r[0] for r in self._conn.execute("SELECT sha256 FROM artifacts WHERE version_id != ?", (mv.id,))}
        for role, artifact in sorted(mv.artifacts.items()):
            path = self.blobs.path(artifact.sha256)
            if artifact.sha256 in shared or not os.path.lexists(path) or is_regular(path):
                continue
            what = "a folder" if path.is_dir() else "a symbolic link" if path.is_symlink() else "not a regular file"
            raise StoreError(f"cannot remove {mv.ref}: its {role} file {str(path)!r} is {what}; nothing was removed. "
                             "'harness registry check --repair' moves it out of the store (a link to the right file "
                             "becomes a copy); then run the remove again")

    def gc(self) -> int:
        """Delete blob files the store placed that nothing references (see :mod:`registry.blobs`)."""
        return blobs.collect(self)

    # -- reading -----------------------------------------------------------------------------

    def _aliases_of(self, name: str) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT alias FROM aliases WHERE name = ?", (name,))]

    def names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
        except (UnknownNameError, UsageError):
            return False
        return True

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``name``, ``name@version`` or ``name:alias``."""
        name, version, alias = parse_ref(ref)
        if alias is not None:
            row = self._conn.execute(
                "SELECT v.* FROM versions v JOIN aliases a ON a.version_id = v.id WHERE a.name = ? AND a.alias = ?",
                (name, alias)).fetchone()
            if row is None:
                self._unknown_name(name)
                raise UnknownNameError(f"alias of {name}", alias, self._aliases_of(name),
                                       hint=f"{name} has aliases: {', '.join(self._aliases_of(name)) or 'none'}")
        elif version is not None:
            row = self._conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?",
                                     (name, version)).fetchone()
            if row is None:
                self._unknown_name(name)
                versions = [str(r[0]) for r in self._conn.execute(
                    "SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))]
                listed = ", ".join(versions if len(versions) <= 12 else [*versions[:3], "...", *versions[-3:]])
                raise UnknownNameError(f"version of {name}", str(version), versions,
                                       message=f"no version {version} of {name} (latest: {versions[-1]}); "
                                               f"{name} has versions {listed}")
        else:
            row = self._conn.execute("SELECT * FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1",
                                     (name,)).fetchone()
            if row is None:
                self._unknown_name(name)
        return self._load(row)

    def _unknown_name(self, name: str) -> None:
        if not self._conn.execute("SELECT 1 FROM versions WHERE name = ? LIMIT 1", (name,)).fetchone():
            raise UnknownNameError("model", name, self.names(),
                                   hint="run 'harness registry list' to see registered models")

    def list(self, name: str | None = None, task: str | None = None) -> list[ModelVersion]:
        query, args = "SELECT * FROM versions WHERE 1=1", []
        if name:
            query += " AND name = ?"
            args.append(name)
        if task:
            query += " AND task = ?"
            args.append(task)
        rows = self._conn.execute(query + " ORDER BY name, version", args).fetchall()
        return [self._load(r) for r in rows]

    def find_by_sha256(self, sha256: str, role: str = "weights") -> ModelVersion | None:
        row = self._conn.execute(
            "SELECT v.* FROM versions v JOIN artifacts a ON a.version_id = v.id WHERE a.sha256 = ? AND a.role = ?"
            " ORDER BY v.id LIMIT 1", (sha256, role)).fetchone()
        return self._load(row) if row else None

    def find_by_tag(self, key: str, value: str, task: str | None = None) -> ModelVersion | None:
        """The last version (by name, then number) tagged ``key=value``, optionally of ``task``."""
        query = "SELECT v.* FROM versions v JOIN tags t ON t.version_id = v.id WHERE t.key = ? AND t.value = ?"
        args: builtins.list[str] = [key, value]
        if task is not None:
            query += " AND v.task = ?"
            args.append(task)
        row = self._conn.execute(query + " ORDER BY v.name DESC, v.version DESC LIMIT 1", args).fetchone()
        return self._load(row) if row else None

    def lineage(self, ref: str) -> builtins.list[ModelVersion]:
        """The version and its ancestors, newest first."""
        chain = [self.get(ref)]
        while chain[-1].parent_id is not None and len(chain) < 100:
            row = self._conn.execute("SELECT * FROM versions WHERE id = ?", (chain[-1].parent_id,)).fetchone()
            if row is None:
                break
            chain.append(self._load(row))
        return chain

    def check(self) -> builtins.list[str]:
        """Problems found (see :mod:`registry.integrity`): database integrity, missing or altered
        artifact files, files the database does not know, stale pending records."""
        from registry.integrity import find_problems

        return [p.text for p in find_problems(self)]

    def _load(self, row: sqlite3.Row) -> ModelVersion:
        vid = row["id"]
        parent_ref = None
        if row["parent_id"] is not None:
            p = self._conn.execute("SELECT name, version FROM versions WHERE id = ?", (row["parent_id"],)).fetchone()
            parent_ref = f"{p[0]}@{p[1]}" if p else None
        artifacts = {
            r["role"]: Artifact(r["role"], r["sha256"], r["size"], self.blobs.path(r["sha256"]),
                                json.loads(r["meta"]))
            for r in self._conn.execute("SELECT * FROM artifacts WHERE version_id = ? ORDER BY role", (vid,))
        }
        return ModelVersion(
            id=vid, name=row["name"], version=row["version"], backbone=row["backbone"], kind=row["kind"],
            parent_id=row["parent_id"], parent_ref=parent_ref, task=row["task"], dataset=row["dataset"],
            num_classes=row["num_classes"],
            class_names=tuple(json.loads(row["class_names"])) if row["class_names"] else None,
            recipe=json.loads(row["recipe"]), metrics=json.loads(row["metrics"]),
            environment=json.loads(row["environment"]), seed=row["seed"], device=row["device"],
            created_at=row["created_at"],
            aliases=tuple(sorted(r[0] for r in self._conn.execute(
                "SELECT alias FROM aliases WHERE version_id = ?", (vid,)))),
            tags={r[0]: r[1] for r in self._conn.execute("SELECT key, value FROM tags WHERE version_id = ?", (vid,))},
            artifacts=artifacts,
        )


def damaged(path: Path, exc: BaseException | str) -> StoreError:
    """The error for a store database SQLite cannot read."""
    why = " ".join(str(exc).replace("*** in database main ***", "").split())  # SQLite's check: a line per page
    why = why if len(why) <= 200 else why[:197] + "..."
    return StoreError(f"the model store database {str(path)!r} is damaged or not a database ({why}); nothing was "
                      "changed. Restore it from a backup, or move it aside and run 'harness registry check' to "
                      "list the artifact files it referenced")
