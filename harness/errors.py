"""The core's typed errors: one hierarchy, defined in ``registry.errors`` (so that package stays
independent of ``harness``) and re-exported here. See that module for the exit code of each."""

from registry.errors import (
    BenchmarkError,
    DataError,
    DuplicateNameError,
    EntryError,
    ExportError,
    HarnessError,
    PluginError,
    StoreError,
    TrainingError,
    UnknownNameError,
    UsageError,
    first_line,
)

__all__ = ["BenchmarkError", "DataError", "DuplicateNameError", "EntryError", "ExportError", "HarnessError",
           "PluginError", "StoreError", "TrainingError", "UnknownNameError", "UsageError", "first_line"]
