"""Our LogME, SFDA and NCTI against their authors' code, number for number, on stored features.

``tests/data/prescreen_features.npz`` holds the frozen features (float16, 300 images of
Fashion-MNIST classes 5-9, 60 per class) of five real models: cifar_resnet8 and cifar_convnet_s
pretrained supervised on classes 0-4, cifar_convnet_xs as an autoencoder and cifar_resnet8 by SimCLR
on the images of classes 5-9 (one epoch on 2,000 images each), and cifar_convnet_s at random
initialisation. ``prescreen_reference.json`` holds what the authors' own code (BUserName/NCTI and
TencentARC/SFDA ``metrics.py``, thuml/LogME ``LogME.py``) returned on them, run outside this project
by ``tests/data/prescreen_reference_runner.py`` (commits and library versions inside the JSON).

Tolerances: LogME and NCTI are the same float64 computations by another route (an SVD of the
features rather than of their Gram matrix, numpy's PCA rather than scikit-learn's): they agree to
~1e-13, and 1e-9 leaves room for other BLAS builds while staying 7 orders below the smallest gap
between two models' scores here (0.04). SFDA estimates the largest within-class eigenvalue by three
power-iteration steps where we take the exact one; the shrinkage exp(-5 lambda) then differs a
little: 2.6e-7 at most here, tolerance 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.select.ncti import ncti_parts, ncti_scores
from harness.select.transferability import logme, score_set, sfda

DATA = Path(__file__).parents[1] / "data"
REFERENCE = json.loads((DATA / "prescreen_reference.json").read_text())


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The inputs the reference was computed on (the runner's ``cases``, rebuilt here)."""
    data = np.load(DATA / "prescreen_features.npz")
    labels = data["labels"]
    out = {}
    for scale in (1, 100):
        for name in (k for k in data.files if k != "labels"):
            out[f"{name}@x{scale}"] = (data[name].astype(np.float64) * scale, labels)
    two = labels < 2
    out["cifar_resnet8_supervised:classes=0,1"] = (data["cifar_resnet8_supervised"].astype(np.float64)[two],
                                                   labels[two])
    out["cifar_convnet_s_supervised:rows=60"] = (data["cifar_convnet_s_supervised"].astype(np.float64)[:60],
                                                labels[:60])
    return out


CASES = _cases()


def test_the_stored_features_are_the_ones_the_reference_saw():
    assert set(CASES) == set(REFERENCE["logme"]) == set(REFERENCE["sfda"])
    assert set(REFERENCE["ncti_parts"]) == {k for k, (x, _) in CASES.items() if min(x.shape) >= 64}
    assert (DATA / "prescreen_features.npz").stat().st_size < 400_000


@pytest.mark.parametrize("case", sorted(REFERENCE["logme"]))
def test_logme_matches_the_authors(case):
    assert logme(*CASES[case]) == pytest.approx(REFERENCE["logme"][case], abs=1e-9)


@pytest.mark.parametrize("case", sorted(REFERENCE["sfda"]))
def test_sfda_matches_the_authors(case):
    assert sfda(*CASES[case]) == pytest.approx(REFERENCE["sfda"][case], abs=1e-5)


@pytest.mark.parametrize("case", sorted(REFERENCE["ncti_parts"]))
def test_ncti_terms_match_the_authors(case):
    parts = ncti_parts(*CASES[case])
    simplex, ncc, variability = REFERENCE["ncti_parts"][case]
    assert (parts.simplex, parts.ncc, parts.variability) == pytest.approx((simplex, ncc, variability), rel=1e-9)


@pytest.mark.parametrize("scale", ["x1", "x100"])
def test_ncti_scores_match_the_authors_evaluation(scale):
    names = [k for k in REFERENCE["ncti"] if k.endswith("@" + scale)]
    labels = CASES[names[0]][1]
    ours = score_set("ncti", {k: CASES[k][0] for k in names}, labels)
    assert ours == pytest.approx({k: REFERENCE["ncti"][k] for k in names}, abs=1e-9)
    assert max(ours.values()) == pytest.approx(2.0) or scale == "x100"  # one model best on all three terms at x1


def test_ncti_of_one_candidate_or_equal_terms_is_zero_not_nan():
    x, y = CASES["cifar_resnet8_supervised@x1"]
    parts = ncti_parts(x, y)
    assert ncti_scores({"only": parts}) == {"only": 0.0}
    assert ncti_scores({"a": parts, "b": parts}) == {"a": 0.0, "b": 0.0}


def test_logme_does_not_depend_on_feature_scale_but_sfda_and_ncti_do():
    """Why the README says SFDA and NCTI compare models only at similar feature scales: the
    authors' shrinkage is set from the raw scatter (the random-init net's features are ~1e-3)."""
    names = ("cifar_convnet_s_scratch", "cifar_resnet8_supervised")
    for name in names:
        assert REFERENCE["logme"][f"{name}@x100"] == pytest.approx(REFERENCE["logme"][f"{name}@x1"], abs=1e-4)
    sfda_scratch = [REFERENCE["sfda"][f"cifar_convnet_s_scratch@x{s}"] for s in (1, 100)]
    assert sfda_scratch[0] < 0.4 < 0.9 < sfda_scratch[1]
