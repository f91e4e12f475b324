"""Tasks made from the user's own data: the files ``harness task add`` saved under
``$HARNESS_HOME/tasks/``, and this process's ``--data`` tasks (inherited by worker processes).

A file that cannot be read is reported like any plugin problem (the other tasks stay), and its
task is simply absent; ``harness task add NAME --force`` rewrites it.
"""

from __future__ import annotations

from typing import Any

import harness


def _specs() -> list:
    from harness.data.datatask import from_environment, read, tasks_dir
    from harness.progress import Progress
    from registry import HarnessError

    found = {}
    folder = tasks_dir()
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            spec = read(path)
        except HarnessError as exc:  # one damaged file must not hide the other saved tasks
            Progress().warn(f"saved task {path.name} left out: {exc}")
            continue
        found[spec.name] = spec
    found.update({spec.name: spec for spec in from_environment()})
    return list(found.values())


@harness.hookimpl
def register_datasets(register: Any) -> None:
    from harness.data.datatask import entries

    for spec in _specs():
        register(entries(spec)[0])


@harness.hookimpl
def register_tasks(register: Any) -> None:
    from harness.data.datatask import entries

    for spec in _specs():
        register(entries(spec)[1])
