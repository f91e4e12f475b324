"""Evaluation: logits over a split, every quality metric of a task, per-class scores, the
confusion matrix (``predict``), typed reports (``report``) and ``evaluate_model`` for any MODEL."""


import sys as _sys
import types as _types
import typing as _typing


class _CallableModule(_types.ModuleType):
    """``harness.evaluate(...)`` is the Python API's :func:`harness.api.evaluate`, while
    ``harness.evaluate`` stays the subpackage (both names are taken; calling it is unambiguous)."""

    def __call__(self, *args: _typing.Any, **kwargs: _typing.Any) -> _typing.Any:
        from harness.api import evaluate

        return evaluate(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
