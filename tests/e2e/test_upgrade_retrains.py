"""What builds a candidate is part of select's cache key: upgrading the plugin distribution that
registers a backbone (or timm, for ``timm_*``) trains again instead of reusing an old row, and the
version records which one built it. Real pip installs of the example plugin at two versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_third_party_plugin import EXAMPLE, _pip_install

SELECT = """
import json
import harness
from registry.store import ModelStore
rows = []
for _ in range({times}):
    result = harness.select_models("checkers", candidates=["tinynet_xs"])
    with ModelStore() as store:
        version = store.get(result.rows[0].model)
    rows.append({{"status": result.rows[0].status, "model": result.rows[0].model, "env": version.environment}})
print(json.dumps(rows))
"""


def _site(tmp: Path, version: str) -> Path:
    """harness-tiny installed at ``version`` (a copy of the example with its version changed)."""
    source = tmp / f"src-{version}" / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', f'version = "{version}"'))
    target = tmp / f"site-{version}"
    _pip_install(source, target)
    return target


def _select(site: Path, times: int) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", SELECT.format(times=times)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_upgrading_the_plugin_that_builds_a_candidate_trains_it_again(tmp_path):
    old = _select(_site(tmp_path, "0.1.0"), times=2)
    assert [r["status"] for r in old] == ["ok", "cached"]  # same plugin version: the row is reused
    assert old[0]["env"]["harness-tiny"] == "0.1.0"
    new = _select(_site(tmp_path, "0.2.0"), times=1)
    assert new[0]["status"] == "ok" and new[0]["model"] != old[0]["model"]  # trained again, not reused
    assert new[0]["env"]["harness-tiny"] == "0.2.0"


def test_timm_is_recorded_for_the_candidates_it_builds(catalogue):
    pytest.importorskip("timm")
    import importlib.metadata

    from harness.environment import builder_versions

    timm_net, _ = catalogue.backbone("timm_test_resnet")
    assert builder_versions(timm_net) == {"timm": importlib.metadata.version("timm")}
    torchvision_net, _ = catalogue.backbone("cifar_resnet8")
    assert builder_versions(torchvision_net) == {}  # harness's own and torch's are in every record already
