"""The typed catalogue that plugins fill, and (later) the persistent model store.

This package imports nothing from ``harness``: plugins and tools can depend on it alone.
"""

from registry.catalogue import KINDS, Catalogue, Table
from registry.entries import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    Budget,
    Dataset,
    ImageSplit,
    Metric,
    PluginInfo,
    Protocol,
    Task,
    WeightTag,
    to_dict,
)
from registry.errors import (
    DataError,
    DuplicateNameError,
    HarnessError,
    PluginError,
    UnknownNameError,
    UsageError,
)

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "KINDS", "Backbone", "Budget", "Catalogue", "DataError",
    "Dataset", "DuplicateNameError", "HarnessError", "ImageSplit", "Metric", "PluginError",
    "PluginInfo", "Protocol", "Table", "Task", "UnknownNameError", "UsageError", "WeightTag",
    "to_dict",
]
