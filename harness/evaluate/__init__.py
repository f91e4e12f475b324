"""Evaluation: logits over a split, every quality metric of a task, per-class scores, the
confusion matrix (``predict``), typed reports (``report``) and ``evaluate_model`` for any MODEL.

The Python API's entry point is :func:`harness.evaluate_model` (:func:`harness.api.evaluate`), not
this package: ``harness.evaluate`` is the subpackage.
"""
