"""Names of the keys under which results are stored with a model version.

A version's ``metrics`` JSON and its ``tags`` are written by one part of harness and read by
another (the leaderboard reads what ``select`` wrote, ``select`` reuses what ``check-onnx``
recorded). These constants are the one spelling both sides use; the values are what existing
stores already hold, so stores written before them stay readable.
"""

from __future__ import annotations

# -- keys of ModelVersion.metrics ---------------------------------------------------------------
TEST = "test"              # {metric name: value} on the task's test split
TEST_FAILED = "test_failed"  # {metric name: why it has no value} (it raised or returned NaN)
TEST_DETAIL = "test_detail"  # {"confusion_matrix": rows of counts, "per_class": [{class, precision, ...}]}
VAL = "val"                # {metric name: value} on the validation split (the best epoch's model)
EVAL_SETS = "eval_sets"    # {"val"|"test": EvalSet.as_dict()}: which images the scores were computed on
TRAIN = "train"            # {"loss", "seconds", "images_per_s"}
HISTORY = "history"        # one record per epoch
PARITY = "parity"          # ParityReport.as_dict()
BENCH = "bench"            # BenchReport.as_dict()
INT8 = "int8"              # Int8Verdict.as_dict(): is the INT8 file faster and accurate enough to offer
PRESCREEN = "prescreen"    # {"method", "score"}
HALVING = "halving"        # {"rung", "rungs", "epochs", "of_epochs"}: the rung a --time-limit run reached
PRETRAIN = "pretrain"      # pretraining loss/accuracy/reconstruction error
PUBLISHED = "published"    # accuracy a weight tag's publisher reports
PARAMS = "params"          # parameter count (imports)
EVAL_PREFIX = "eval:"      # "eval:TASK[:tta][:limitN]" -> {metric name: value}
ROBUSTNESS = "robustness"  # RobustnessReport.as_dict(), or {"suite", "skipped", "estimate_s"}
CALIBRATION = "calibration"  # Calibration.as_dict(): temperature fitted on val, test ECE/NLL before and after

# -- tags -----------------------------------------------------------------------------------------
TAG_FINGERPRINT = "fingerprint"  # what a select row's result depends on (cache key)
TAG_CANDIDATE = "candidate"      # the candidate reference a select row trained
TAG_SELECT = "select"            # "1" on versions made by select
TAG_SELECT_GROUP = "select_group"  # the seeds of one candidate in one select run share it
TAG_PARITY = "parity"            # "passed" / "failed"
TAG_PARENT_REMOVED = "parent_removed"  # the parent a version was made from, removed while it was made

# -- artifact roles -----------------------------------------------------------------------------
ROLE_WEIGHTS = "weights"         # safetensors state dict
ROLE_ONNX = "onnx"               # the exported ONNX file at the model's own input size
ROLE_ONNX_INT8 = "onnx-int8"     # its INT8 quantization, written by export --int8 when it pays (or forced)
ROLE_PREDICTIONS = "predictions"  # .npz: float16 logits, labels and image ids on validation and test

# -- aliases --------------------------------------------------------------------------------------
ALIAS_BEST = "best"              # TASK:best, moved by select to the chosen model


def eval_key(task: str, tta: bool = False, limit: int | None = None) -> str:
    """The metrics key of an ``evaluate`` result (``eval:cifar10:tta:limit500``)."""
    return EVAL_PREFIX + task + (":tta" if tta else "") + (f":limit{limit}" if limit else "")
