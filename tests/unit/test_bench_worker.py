"""The benchmark worker's timing loop and eager layout choice, run in this process."""

from __future__ import annotations

import time

import torch

from harness.onnx import worker
from harness.onnx.report import BenchReport, BenchRow


def test_fast_runs_are_repeated_until_the_minimum_time_slow_ones_stop_at_iters():
    fast = worker._time(lambda x: None, None, iters=5, min_seconds=0.05)
    assert len(fast) > 50  # a no-op: repeated for 0.05 s, far past 5
    slow = worker._time(lambda x: time.sleep(0.03), None, iters=3, min_seconds=0.05)
    assert len(slow) == 3  # 3 x 30 ms already pass the minimum time
    capped = worker._time(lambda x: None, None, iters=1, min_seconds=60)
    assert len(capped) == worker.MAX_ITERS


def test_eager_gets_the_faster_of_two_layouts():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    assert worker._faster_layout(model, 2, (3, 16, 16), warmup=1) in ("contiguous", "channels_last")


def test_rows_keep_samples_and_setup_through_the_store_format():
    row = BenchRow("torch", 1, 1.0, 1.2, 1000.0, 300.0, 240, "inference_mode, channels_last, 2 threads")
    report = BenchReport("m", 2, (3, 8, 8), 10, 20, 1, 20, rows=(row,))
    back = BenchReport.from_dict(report.stored(), "m")
    assert back.rows == (row,)
    old = {k: v for k, v in report.stored().items()}
    old["rows"] = [{k: v for k, v in r.items() if k not in ("samples", "setup")} for r in old["rows"]]
    assert BenchReport.from_dict(old).rows[0].samples == 0  # stores written before these fields


def test_to_rows_gives_one_dict_per_runtime_and_batch_matching_the_json():
    rows = (BenchRow("torch", 1, 2.0, 2.4, 500.0, 300.0, 40, "eager"),
            BenchRow("onnxruntime", 1, 1.0, 1.1, 1000.0, 250.0, 40, "ort"),
            BenchRow("onnxruntime", 8, 4.0, 4.4, 2000.0, 260.0, 40, "ort"))
    report = BenchReport("m", 2, (3, 8, 8), 10, 20, 1, 20, rows=rows)
    table = report.to_rows()
    assert [(r["runtime"], r["batch"], r["median_ms"]) for r in table] == [
        ("torch", 1, 2.0), ("onnxruntime", 1, 1.0), ("onnxruntime", 8, 4.0)]
    assert table == report.to_dict()["rows"]  # the rows --format json prints
    assert report.speedups == {"ort_vs_eager_b1": 2.0}
