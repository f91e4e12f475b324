"""A store database damaged past the pages opening it reads (its header and schema intact): found by
``registry check``, and by any writing command before its work, never after a training run."""

from __future__ import annotations

import pytest
from faultlib import assert_clean_failure

from registry.store import ModelStore

pytestmark = pytest.mark.slow


def _damage_pages(trained: str) -> None:
    with ModelStore() as store:
        store.register("filler", backbone="x", kind="import", files={})  # more than a page or two of rows
        db = store.db_path
    data = bytearray(db.read_bytes())
    assert len(data) > 12288
    data[4096:12288] = b"\x5a" * 8192  # pages 2 and 3, as the outsider did
    db.write_bytes(bytes(data))


def test_registry_check_reports_damaged_pages_with_the_fix(run_cli, trained):
    _damage_pages(trained)
    check = run_cli("registry", "check")
    assert_clean_failure(check, 1, "damaged")
    line = next(text for text in check.output.splitlines() if text.startswith("Error: "))
    assert "from a backup" in line and "malformed" in line, check.output  # one line, SQLite's report folded in
    assert run_cli("registry", "check", "--repair").exit_code == 1  # nothing it could repair by itself


def test_a_writing_command_refuses_a_damaged_store_before_training(run_cli, trained):
    _damage_pages(trained)
    result = run_cli("finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "1", "--train-limit", "64")
    assert_clean_failure(result, 1, "damaged")
    assert "epoch 1/1" not in result.output  # refused before any training


def test_weights_removed_between_resolving_and_building_are_named_as_gone(trained, builtin_plugins):
    """A `registry remove` racing a run that resolved its model already: the error names the version,
    not 'pass an existing .safetensors file' (the user passed a registry reference)."""
    from harness.context import Context
    from harness.models.sources import resolve_model
    from registry import DataError

    with Context(builtin_plugins, quiet=True) as ctx:
        source = resolve_model(ctx, trained)
        source.weights_file.unlink()  # what the remove's gc does to the blob
        with pytest.raises(DataError, match=r"the weights of synthetic@1 are gone from the store .* removed"):
            source.build()
