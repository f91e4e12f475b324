"""The shortcuts in near-copy detection are exact: the blocked top-k and the candidate search
against brute force; and the CSV escape of ``--write-clean`` reads back as written."""

from __future__ import annotations

import pytest
import torch

from harness.data import dedup
from harness.data.check import escape_cell
from harness.data.sources import unescape_cell


@pytest.mark.parametrize("shape", [(300, 4096), (50, 64), (64, 1000)])
def test_top_is_topk(shape):
    sims = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    for view in (sims, sims.T):
        value, index = dedup._top(view, 8)
        assert torch.equal(value, view.topk(8, dim=1).values)
        assert torch.equal(view.gather(1, index), value)


def test_candidates_are_the_brute_force_nearest(monkeypatch):
    monkeypatch.setattr(dedup, "BLOCK", 37)  # blocks that do not divide the count
    monkeypatch.setattr(dedup, "MIN_SIM", 0.5)
    d = torch.nn.functional.normalize(torch.randn(300, 6, generator=torch.Generator().manual_seed(1)), dim=1)
    lo, hi = dedup._candidates(d)
    sims = d @ d.T
    sims.fill_diagonal_(-2)
    value, index = sims.topk(dedup.K_NEAREST, dim=1)
    expected = {(min(r, c), max(r, c)) for r in range(300) for v, c in zip(value[r].tolist(), index[r].tolist(),
                                                                            strict=True) if v >= 0.5}
    assert set(zip(lo.tolist(), hi.tolist(), strict=True)) == expected


@pytest.mark.parametrize("value", ["", "'", "'a", "=1+1", "+cat", "-3", "@SUM", "\tx", "\rx", "'=x", "''", "cat",
                                   "a=b", "'''"])
def test_escape_reads_back(value):
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r"))
