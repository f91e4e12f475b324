"""NCTI (Wang et al., ICCV 2023, "How Far Pre-trained Models Are from Neural Collapse on the Target
Dataset Informs their Transferability"): a model transfers well when its features on the target
are already close to neural collapse, the state a fine-tuned classifier ends in. Three terms:

- **simplex** (the class means spread like a simplex): the nuclear norm of the features projected
  on the target's discriminant space (LDA, k-1 dimensions) and centred; higher is better;
- **ncc** (the nearest class centre already classifies): the mean LDA probability of the true class;
  higher is better;
- **variability** (each class collapses to a point): the log of the summed nuclear norms of each
  class's predicted-probability matrix (a collapsed class predicts one vector: rank 1); lower is
  better.

Before LDA the features are reduced by PCA to 64 dimensions (fewer when there are fewer features
or images; the authors' code fails there), and LDA is shrunk by ``exp(-sum of the 32 largest PCA
variances)``, floored at 1e-10, where the authors switch to scikit-learn's unshrunk ``svd`` solver.
The score is ``ncc + simplex - variability`` after each term is min-max scaled over the candidates
(the authors' evaluation script), so it ranks a set and means nothing for one model alone; a term
that is the same for every candidate contributes 0 (the authors' script divides by zero there).

Checked number for number against the authors' ``metrics.py`` (``tests/unit/test_transferability_reference.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from harness.select.transferability import FisherSpace

PCA_DIMS = 64
"""Dimensions kept by the PCA before LDA (the authors')."""
SHRINK_FROM = 32
"""Leading PCA variances whose sum sets the LDA shrinkage (the authors')."""
SHRINK_FLOOR = 1e-10
"""Below this shrinkage the authors use the unshrunk LDA."""


@dataclass(frozen=True)
class NctiParts:
    """The three neural-collapse terms of one candidate, before scaling over the candidates."""

    simplex: float
    ncc: float
    variability: float
    shrinkage: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def pca(features: np.ndarray, dims: int = PCA_DIMS) -> tuple[np.ndarray, np.ndarray]:
    """(centred features on their ``dims`` leading principal axes, the variances along them)."""
    x = features - features.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(dims, len(s))
    return x @ vt[:k].T, s[:k] ** 2 / max(len(x) - 1, 1)


def ncti_parts(features: np.ndarray, labels: np.ndarray) -> NctiParts:
    """The simplex, ncc and variability terms of ``features`` for integer ``labels``."""
    x, variances = pca(np.asarray(features, dtype=np.float64))
    shrinkage = max(math.exp(-float(variances[:SHRINK_FROM].sum())), SHRINK_FLOOR)
    k = len(np.unique(labels))
    lda = FisherSpace(x, labels, shrinkage=shrinkage if shrinkage > SHRINK_FLOOR else 0.0)
    low = lda.transform(x)
    low = low - low.mean(0, keepdims=True)
    proba = lda.proba(x)
    y = lda.y
    per_class = sum(float(np.linalg.norm(proba[y == c], ord="nuc")) for c in range(k))
    return NctiParts(simplex=float(np.linalg.norm(low, ord="nuc")), ncc=float(proba[np.arange(len(y)), y].mean()),
                     variability=math.log(per_class), shrinkage=shrinkage)


def _scaled(values: Mapping[str, float]) -> dict[str, float]:
    low, high = min(values.values()), max(values.values())
    span = high - low
    return {ref: (v - low) / span if span > 0 else 0.0 for ref, v in values.items()}


def ncti_scores(parts: Mapping[str, NctiParts]) -> dict[str, float]:
    """NCTI of each candidate: ncc + simplex - variability, each min-max scaled over ``parts``."""
    if not parts:
        return {}
    simplex = _scaled({ref: p.simplex for ref, p in parts.items()})
    ncc = _scaled({ref: p.ncc for ref, p in parts.items()})
    variability = _scaled({ref: p.variability for ref, p in parts.items()})
    return {ref: ncc[ref] + simplex[ref] - variability[ref] for ref in parts}
