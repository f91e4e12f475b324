"""The typed result of a benchmark. ``as_dict()`` is what ``--format json`` prints and what the
store keeps under ``metrics["bench"]``; :meth:`BenchReport.from_dict` reads stored ones back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")
FLOPS_UNIT = "FLOPs, 2 per multiply-add, batch 1"


@dataclass(frozen=True)
class BenchRow:
    """Latency of one runtime at one batch size (milliseconds per batch), and memory."""

    runtime: str
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float
    peak_rss_mb: float
    samples: int = 0   # timed runs the median is taken over (all rounds)
    setup: str = ""    # how the runtime was run (layout, inference mode, threads)
    round_medians_ms: tuple[float, ...] = ()  # the median of each interleaved round, in order

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data: one entry of ``BenchReport.to_rows()`` and of ``as_dict()["rows"]``."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Int8Accuracy:
    """Top-1 accuracy of the FP32 and INT8 ONNX files on the same test images."""

    fp32: float
    int8: float
    samples: int

    @property
    def change_points(self) -> float:
        return round(100 * (self.int8 - self.fp32), 2)

    def as_dict(self) -> dict[str, Any]:
        return {"onnxruntime": self.fp32, "onnxruntime-int8": self.int8, "samples": self.samples,
                "int8_change_points": self.change_points}


@dataclass(frozen=True)
class BenchReport:
    """Latency and throughput per runtime and batch size, ratios, and the model's size figures."""

    model: str
    threads: int
    input: tuple[int, int, int]
    params: int
    flops: int
    rounds: int
    iters: int
    rows: tuple[BenchRow, ...] = ()
    onnx_size_mb: float | None = None
    int8_size_mb: float | None = None
    accuracy: Int8Accuracy | None = None
    flops_unit: str = FLOPS_UNIT
    timing_problems: tuple[str, ...] = ()  # why the latencies should not be trusted (busy machine, spread)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reliable(self) -> bool:
        return not self.timing_problems

    def median(self, runtime: str, batch: int) -> float | None:
        row = self.row(runtime, batch)
        return None if row is None else row.median_ms

    def row(self, runtime: str, batch: int) -> BenchRow | None:
        return next((r for r in self.rows if r.runtime == runtime and r.batch == batch), None)

    @property
    def speedups(self) -> dict[str, float]:
        """``ort_vs_eager_bN`` (eager ms / ORT ms) and ``int8_vs_fp32_bN`` for each batch size."""
        ratios = {}
        for b in sorted({r.batch for r in self.rows}):
            eager, ort, int8 = (self.median(rt, b) for rt in RUNTIMES)
            if eager and ort:
                ratios[f"ort_vs_eager_b{b}"] = round(eager / ort, 2)
            if ort and int8:
                ratios[f"int8_vs_fp32_b{b}"] = round(ort / int8, 2)
        return ratios

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (same as ``as_dict()``)."""
        return self.as_dict()

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per runtime and batch size."""
        return [r.as_dict() for r in self.rows]

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model, "threads": self.threads, "input": list(self.input), "params": self.params,
            "flops": self.flops, "flops_unit": self.flops_unit, "rounds": self.rounds, "iters": self.iters,
            "rows": self.to_rows(), "speedups": self.speedups,
            "reliable": self.reliable, "timing_problems": list(self.timing_problems), **self.extra,
        }
        for key in ("onnx_size_mb", "int8_size_mb"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy.as_dict()
        return data

    def stored(self) -> dict[str, Any]:
        """What the store keeps (the model reference is the version itself)."""
        return {k: v for k, v in self.as_dict().items() if k != "model"}

    @classmethod
    def from_dict(cls, data: dict[str, Any], model: str = "") -> BenchReport:
        """A report from ``as_dict()`` or ``stored()`` output (stores written by earlier versions too)."""
        known = {"model", "threads", "input", "params", "flops", "flops_unit", "rounds", "iters", "rows",
                 "speedups", "onnx_size_mb", "int8_size_mb", "accuracy", "reliable", "timing_problems"}
        acc = data.get("accuracy")
        return cls(
            model=data.get("model", model), threads=int(data.get("threads", 0)),
            input=tuple(data.get("input", (0, 0, 0))), params=int(data.get("params", 0)),
            flops=int(data.get("flops", 0)), rounds=int(data.get("rounds", 0)), iters=int(data.get("iters", 0)),
            rows=tuple(BenchRow(**{k: r[k] for k in ("runtime", "batch", "median_ms", "p90_ms", "images_per_s",
                                                     "peak_rss_mb")}, samples=int(r.get("samples", 0)),
                                setup=str(r.get("setup", "")),
                                round_medians_ms=tuple(r.get("round_medians_ms", ()))) for r in data.get("rows", ())),
            onnx_size_mb=data.get("onnx_size_mb"), int8_size_mb=data.get("int8_size_mb"),
            accuracy=None if not acc else Int8Accuracy(acc["onnxruntime"], acc["onnxruntime-int8"], acc["samples"]),
            flops_unit=data.get("flops_unit", FLOPS_UNIT), timing_problems=tuple(data.get("timing_problems", ())),
            extra={k: v for k, v in data.items() if k not in known})
