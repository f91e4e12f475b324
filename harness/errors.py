"""The core's typed errors (defined in ``registry`` so that package stays independent)."""

from registry.errors import (
    DataError,
    DuplicateNameError,
    HarnessError,
    PluginError,
    UnknownNameError,
    UsageError,
)

__all__ = ["DataError", "DuplicateNameError", "HarnessError", "PluginError", "UnknownNameError",
           "UsageError"]
