"""harness-tiny's own tests: the conformance kit over everything the plugin registers.

Run from this folder after ``pip install -e .``: ``python -m pytest tests``.
"""

from harness import load_plugins
from harness.testing import assert_conforms, check_plugin


def test_harness_tiny_conforms(tmp_path):
    # checkers is generated, so the data folder stays empty; a plugin reading files would write
    # a few in its real format under tmp_path first
    assert_conforms(check_plugin(load_plugins(), "harness_tiny", data_dir=tmp_path))
