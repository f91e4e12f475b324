"""The typed catalogue that plugins fill, and (later) the persistent model store.

This package imports nothing from ``harness``: plugins and tools can depend on it alone.
"""

from registry import keys
from registry.catalogue import KINDS, Catalogue, Table
from registry.entries import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    Budget,
    Dataset,
    Family,
    ImageSplit,
    Metric,
    PluginInfo,
    Protocol,
    Task,
    WeightTag,
    to_dict,
)
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

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "KINDS", "Backbone", "BenchmarkError", "Budget", "Catalogue",
    "DataError", "Dataset", "DuplicateNameError", "EntryError", "ExportError", "Family", "HarnessError",
    "ImageSplit", "Metric", "PluginError", "PluginInfo", "Protocol", "StoreError", "Table", "Task",
    "TrainingError", "UnknownNameError", "UsageError", "WeightTag", "first_line", "keys", "to_dict",
]
