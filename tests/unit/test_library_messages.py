"""Library errors name Python parameters (``{param}``, ``{param:NAME}``); only the CLI turns them into
flags. A ``--flag`` in a library message is allowed only inside a command to run ('harness ...')."""

from __future__ import annotations

import ast
import re

from helpers import ROOT

from harness.errors import UsageError

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _raised_texts():
    """(file:line, the string pieces of the message) of every ``raise`` in library code."""
    for package in ("harness", "registry", "plugins"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.relative_to(ROOT).parts[:2] == ("harness", "cli"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    texts = [c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant)
                             and isinstance(c.value, str)]
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", texts


def test_library_errors_name_parameters_not_flags():
    naming_flags = {where: sorted({f for t in texts for f in FLAG.findall(t)}) for where, texts in _raised_texts()
                    if any(FLAG.search(t) for t in texts) and not any("harness " in t for t in texts)}
    assert not naming_flags, "use {param} / {param:NAME}: the CLI shows the flag, Python the keyword"


def test_other_parameters_are_named_in_python_and_by_their_flags_on_the_cli():
    exc = UsageError("{param} works with one seed ({param:seeds} 1)", param="halving")
    assert str(exc) == "halving works with one seed (seeds 1)"
    assert exc.render(lambda p: "--" + p.replace("_", "-")) == "--halving works with one seed (--seeds 1)"
    assert str(UsageError("{param:data} hf:... needs datasets")) == "data hf:... needs datasets"


def test_a_flag_kept_under_another_name_is_found_by_its_spelling(run_cli):
    # the library says ``data`` (the API's keyword); select keeps --data as data_uri
    result = run_cli("select", "--task", "synthetic", "--data", "/nowhere/at/all")
    assert result.exit_code == 2 and "Error: give --task or --data, not both" in result.output
