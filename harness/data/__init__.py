"""Data: where datasets are read from, decoded splits and their checks, task splits (train /
validation / test), preprocessing (resolved in one place) and in-memory tensor batches.

Importing this package is cheap; torch is imported by the functions that need it.
"""

from harness.data.loading import check_labels, data_root, load_split
from harness.data.splits import TaskData, load_task_data, load_test_split, split_train_val, subset

__all__ = [
           "TaskData",
           "check_labels",
           "data_root",
           "load_split",
           "load_task_data",
           "load_test_split",
           "split_train_val",
           "subset",
]
