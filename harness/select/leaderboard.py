"""Leaderboards: one row per candidate from the store, rendered as text tables, CSV, JSON or a plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from harness.select.run import pareto
from registry import Catalogue, UsageError
from registry.store import ModelStore

FORMATS = ("github", "pipe", "latex", "html", "csv", "json")
COLUMNS = ["candidate", "model", "status", "{primary}", "{primary}_ci95", "macro_f1", "top5_accuracy", "ece",
           "ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms", "ort_b32_img_s", "params_m", "gflops",
           "size_mb", "parity", "prescreen", "pareto", "chosen", "fingerprint", "excluded", "reason", "place"]
SORTABLE = ("{primary}", "macro_f1", "top5_accuracy", "ece", "ort_b1_ms", "eager_b1_ms", "ort_b32_ms", "eager_b32_ms",
            "ort_b32_img_s", "params_m", "gflops", "size_mb", "prescreen")
UNITS_NOTE = "gflops: 2 FLOPs per multiply-add, batch 1; latencies: median ms; size: ONNX MB"


def rows_from_store(catalogue: Catalogue, store: ModelStore, task_name: str) -> list[dict[str, Any]]:
    """The latest selected version of each candidate for ``task_name``."""
    task = catalogue.tasks.get(task_name)
    primary = catalogue.metrics.get(task.primary_metric)
    latest: dict[str, Any] = {}
    for version in store.list(task=task.name):
        if version.tags.get("select") == "1":
            latest[version.tags.get("candidate", version.backbone)] = version
    rows = []
    for candidate, v in latest.items():
        row: dict[str, Any] = {"candidate": candidate, "model": v.ref, "status": "ok", **v.metrics.get("test", {}),
                               "fingerprint": v.tags.get("fingerprint"), "chosen": "best" in v.aliases}
        if "prescreen" in v.metrics:
            row["prescreen"] = v.metrics["prescreen"]["score"]
        parity = v.metrics.get("parity")
        row["parity"] = None if parity is None else ("passed" if parity["passed"] else "FAILED")
        report = v.metrics.get("bench")
        if report:
            med = {(r["runtime"], r["batch"]): r for r in report["rows"]}
            for runtime, b, key in (("torch", 1, "eager_b1_ms"), ("onnxruntime", 1, "ort_b1_ms"),
                                    ("torch", 32, "eager_b32_ms"), ("onnxruntime", 32, "ort_b32_ms")):
                if (runtime, b) in med:
                    row[key] = med[(runtime, b)]["median_ms"]
            if ("onnxruntime", 32) in med:
                row["ort_b32_img_s"] = med[("onnxruntime", 32)]["images_per_s"]
            row.update({"params_m": round(report["params"] / 1e6, 3), "gflops": round(report["flops"] / 1e9, 4),
                        "size_mb": report.get("onnx_size_mb")})
        rows.append(row)
    pareto(rows, primary.name, primary.higher_is_better)
    return sort_rows(rows, primary.name, primary.higher_is_better)


def sort_rows(rows: list[dict[str, Any]], metric: str, higher_is_better: bool) -> list[dict[str, Any]]:
    have = [r for r in rows if isinstance(r.get(metric), (int, float))]
    rest = [r for r in rows if r not in have]
    return sorted(have, key=lambda r: r[metric], reverse=higher_is_better) + rest


def columns_for(rows: list[dict[str, Any]], primary: str) -> list[str]:
    """The columns some row fills, in a fixed order; an empty board still names its key columns."""
    wanted = [c.format(primary=primary) for c in COLUMNS]
    if not rows:
        return wanted[:4]
    present = {k for r in rows for k, v in r.items() if v is not None and v != ""}
    return [c for c in dict.fromkeys(wanted) if c in present]


def sort_key_direction(catalogue: Catalogue, primary: str, key: str) -> bool:
    """Whether ``--sort key`` ranks high values first; unknown keys are a usage error with suggestions."""
    from registry import UnknownNameError

    if key in catalogue.metrics:
        return catalogue.metrics.get(key).higher_is_better
    sortable = [c.format(primary=primary) for c in SORTABLE]
    if key not in sortable:
        raise UnknownNameError("sort column", key, [*sortable, *catalogue.metrics.names()],
                               hint="sort by a metric or by one of: " + ", ".join(sortable))
    return not (key.endswith("_ms") or key in ("params_m", "gflops", "size_mb"))


def render(rows: list[dict[str, Any]], fmt: str, primary: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    columns = columns_for(rows, primary)

    def cell(v: Any) -> Any:
        if isinstance(v, bool):
            return "yes" if v else ""
        return "" if v is None else v

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([cell(r.get(c)) for c in columns])
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate

    table = tabulate([[cell(r.get(c)) for c in columns] for r in rows], headers=columns, tablefmt=fmt,
                     disable_numparse=True)
    return table


def plot(rows: list[dict[str, Any]], primary: str, higher_is_better: bool, path: str | Path, title: str) -> Path:
    """Quality against ONNX Runtime batch-1 latency, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get(primary) is not None and r.get("ort_b1_ms") is not None]
    if not pts:
        raise UsageError("nothing to plot: no row has both a quality metric and a latency")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([r["ort_b1_ms"] for r in pts], [r[primary] for r in pts], color="tab:blue", zorder=3,
               label="candidate")
    for r in pts:
        ax.annotate(r["candidate"], (r["ort_b1_ms"], r[primary]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    front = sorted((r for r in pts if r.get("pareto")), key=lambda r: r["ort_b1_ms"])
    if front:
        ax.plot([r["ort_b1_ms"] for r in front], [r[primary] for r in front], color="tab:red", zorder=4,
                marker="o", markerfacecolor="none", markersize=11, label="Pareto front")
    ax.legend(loc="best")
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel("ONNX Runtime latency, batch 1 (median ms)")
    ax.set_ylabel(f"{primary} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
