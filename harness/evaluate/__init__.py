"""Evaluation: logits over a split, every quality metric of a task, per-class scores, the
confusion matrix (``predict``), typed reports (``report``) and ``evaluate_model`` for any MODEL."""
