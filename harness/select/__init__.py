"""Model selection: candidates, prescreens, the protocol runner and leaderboards."""


import sys as _sys
import types as _types
import typing as _typing


class _CallableModule(_types.ModuleType):
    """``harness.select(...)`` is the Python API's :func:`harness.api.select`, while
    ``harness.select`` stays the subpackage (both names are taken; calling it is unambiguous)."""

    def __call__(self, *args: _typing.Any, **kwargs: _typing.Any) -> _typing.Any:
        from harness.api import select

        return select(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
