"""Two ``harness select`` processes on one store (issue 27): each candidate's row is trained once.

Both real console-script processes start together on the same tiny task; the claim on the row's
fingerprint (``harness.select.claims``) makes the one that comes second wait, then reuse the first's
model. Without it both trained every candidate and the store held two versions of one row.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import harness_exe

from registry.store import ModelStore


def _start(home: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([*harness_exe(), "select", "--task", "synthetic", "--candidates", "cifar_convnet_xs",
                             "--budget", "quick", "--format", "json"],
                            env={**env, "HARNESS_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_two_selects_on_one_store_train_each_row_once(tmp_path):
    home = tmp_path / "home"
    ModelStore(home).close()  # both find the store made; neither races to create its schema
    first, second = _start(home), _start(home)
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    for process, (_, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    with ModelStore(home) as store:
        trained = [v for v in store.list(task="synthetic") if v.kind == "finetune"]
    assert [v.ref for v in trained] == ["synthetic@1"], [v.ref for v in trained]
    rows = [json.loads(out)["rows"][0] for out, _ in outputs]
    assert {row["model"] for row in rows} == {"synthetic@1"}
    waited = [err for _, err in outputs if "waiting for another select training the same run" in err]
    reused = [err for _, err in outputs if "seed 0 cached as synthetic@1" in err]
    assert len(reused) == 1, [err[-1500:] for _, err in outputs]
    assert waited, "the second select reached the row after the first had finished; no overlap was tested"
    assert "pid " in waited[0]  # the waiting message names the holder


def test_a_claim_is_released_when_its_holder_dies(tmp_path):
    """flock is the kernel's: a select killed while training leaves no stale claim."""
    import signal
    import sys
    import time

    from harness.progress import Progress
    from harness.select.claims import claim, lock_path

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness.progress import Progress\n"
        "from harness.select.claims import claim\n"
        "with claim(Path(sys.argv[1]), 'fp1', Progress(quiet=True), 'x'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert "pid " in lock_path(tmp_path, "fp1").read_text()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.perf_counter()
    with claim(tmp_path, "fp1", Progress(quiet=True), "x") as waited:
        assert waited == 0.0
    assert time.perf_counter() - started < 5
