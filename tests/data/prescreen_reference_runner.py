"""How ``prescreen_reference.json`` was made: the authors' own code, run outside this project.

    git clone https://github.com/BUserName/NCTI      # metrics.py: NCTI_Score (and SFDA_Score, LogME)
    git clone https://github.com/TencentARC/SFDA     # metrics.py: SFDA_Score
    git clone https://github.com/thuml/LogME        # LogME.py (needs numba)
    python prescreen_reference_runner.py NCTI_DIR SFDA_DIR LOGME_DIR > prescreen_reference.json

(run with numpy, scipy, scikit-learn, numba and torch importable: their metrics.py imports torch.)

Each repository's directory goes first on ``sys.path``; their ``utils.py`` imports their model zoo,
so a ``utils.py`` holding only their ``iterative_A`` (copied unchanged) is put beside ``metrics.py``.
The inputs are the cases of :func:`cases` over ``prescreen_features.npz``, exactly as the test
rebuilds them. NCTI's combined score is the authors' evaluation script's rule (each term min-max
scaled over the models, ncc + simplex - variability), which lives in their script, not a function.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def cases(data) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (features as float64, labels): the models at their own scale and x100, two classes,
    and fewer images than dimensions."""
    labels = data["labels"]
    models = [k for k in data.files if k != "labels"]
    out = {}
    for scale in (1, 100):
        for name in models:
            out[f"{name}@x{scale}"] = (data[name].astype(np.float64) * scale, labels)
    two = labels < 2
    resnet8 = data["cifar_resnet8_supervised"].astype(np.float64)
    out["cifar_resnet8_supervised:classes=0,1"] = (resnet8[two], labels[two])
    out["cifar_convnet_s_supervised:rows=60"] = (data["cifar_convnet_s_supervised"].astype(np.float64)[:60],
                                                labels[:60])
    return out


def _load(directory: str, module: str):
    sys.path.insert(0, directory)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(directory)
        sys.modules.pop("utils", None)


def main() -> None:
    ncti_dir, sfda_dir, logme_dir = sys.argv[1:4]
    ncti = _load(ncti_dir, "metrics")
    sys.modules.pop("metrics")
    sfda = _load(sfda_dir, "metrics")
    logme = _load(logme_dir, "LogME")
    data = np.load(HERE / "prescreen_features.npz")
    out: dict = {"logme": {}, "sfda": {}, "ncti_parts": {}, "ncti": {}}
    for name, (x, y) in cases(data).items():
        with contextlib.redirect_stdout(io.StringIO()):  # their code prints as it goes
            out["logme"][name] = float(logme.LogME(regression=False).fit(x.copy(), y))
            out["sfda"][name] = float(sfda.SFDA_Score(x.copy(), y))
            if min(x.shape) >= 64:  # their PCA keeps 64 components: fewer images or dimensions fail there
                np.random.seed(1)  # their evaluation script's seed (a randomized PCA would use it)
                out["ncti_parts"][name] = [float(v) for v in ncti.NCTI_Score(x.copy(), y)]
    for scale in ("x1", "x100"):
        parts = {k: v for k, v in out["ncti_parts"].items() if k.endswith("@" + scale)}
        cols = np.array(list(parts.values()))
        low, span = cols.min(0), cols.max(0) - cols.min(0)
        for name, row in parts.items():
            simplex, ncc, variability = (np.array(row) - low) / span
            out["ncti"][name] = float(ncc + simplex - variability)
    import scipy
    import sklearn
    out["provenance"] = {
        "repositories": {"BUserName/NCTI": "b18d39514a3f2a7a949500b467a38b93de1428e4",
                         "TencentARC/SFDA": "3b7edf76bd682acb1eba4f4c5eb7ea7f3f7f6c59",
                         "thuml/LogME": "56551ca94a3295bcc37e6a01b1291911af985f07"},
        "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__, "ncti_parts": "[simplex (all_lowfeat_nuc), ncc (sfda_score), "
        "variability (log class_pred_nuc)] as NCTI_Score returns them"}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
