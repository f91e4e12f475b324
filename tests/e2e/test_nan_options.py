"""A tolerance of ``nan`` on a good model: refused in one line (exit 2) before the model is exported or
compared, and nothing is recorded against it (it used to say "parity FAILED" and tag it failed)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # exports and checks a trained model


def test_check_onnx_refuses_a_nan_tolerance_and_records_nothing(run_cli, trained):
    from registry.store import ModelStore

    for flag in ("--atol", "--rtol"):
        refused = run_cli("check-onnx", trained, "--samples", "16", flag, "nan")
        assert refused.exit_code == 2, refused.output
        assert refused.output.strip() == (f"Error: Invalid value for '{flag}': nan is not a finite number; "
                                          "see 'harness check-onnx --help'")
    with ModelStore() as store:
        version = store.get(trained)
        assert "parity" not in version.tags and "onnx" not in version.artifacts
    checked = run_cli("check-onnx", trained, "--samples", "16", "--atol", "1e-4", "--format", "json")
    assert checked.exit_code == 0 and json.loads(checked.output)["passed"], checked.output
