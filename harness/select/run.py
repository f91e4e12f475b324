"""``select()``: the standard protocol over candidates, ending in a leaderboard and a chosen model.

For each candidate: fine-tune with the task's protocol and budget, evaluate on test, export to
ONNX, check parity on the test data, and benchmark eager and ONNX Runtime latency. Every row has a
fingerprint (weights, data, recipe, library versions, device, seed); an unchanged row is reused
from the store instead of retrained. A failing candidate becomes a row with its status.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from harness.bench import bench
from harness.data import load_split
from harness.environment import library_versions, select_device
from harness.models import weights_cache_path
from harness.parity import check_parity
from harness.select.candidates import Candidate, check_available, expand
from harness.sources import resolve_model
from harness.train.finetune import finetune, fingerprint
from harness.train.recipe import recipe_for
from registry import Catalogue, HarnessError, UsageError
from registry.files import sha256_file
from registry.store import ModelStore, ModelVersion


def say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


@dataclass
class SelectResult:
    task: str
    primary: str
    higher_is_better: bool
    rows: list[dict[str, Any]]
    winner: dict[str, Any] | None
    kendall_tau: float | None
    prescreen: str | None
    seconds: float
    skipped: list[dict[str, Any]] = field(default_factory=list)


def dataset_hash(catalogue: Catalogue, dataset: str, data_dir: str | None, image_size: int | None) -> str:
    digest = hashlib.sha256()
    for split in ("train", "test"):
        data = load_split(catalogue, dataset, split, data_dir=data_dir, image_size=image_size)
        digest.update(data.images.numpy().tobytes())
        digest.update(data.labels.numpy().tobytes())
    return digest.hexdigest()[:16]


def weights_identity(catalogue: Catalogue, store: ModelStore, ref: str) -> str | None:
    source = resolve_model(catalogue, store, ref)
    if source.version is not None:
        return source.version.artifacts["weights"].sha256
    if source.tag is not None:
        path = weights_cache_path(source.tag)
        return sha256_file(path) if path and path.is_file() else source.tag.url
    return None  # random initialisation: the seed says it all


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95% t confidence interval."""
    if len(values) < 2:
        return values[0], 0.0
    from scipy.stats import t

    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values), float(half)


def pareto(rows: list[dict[str, Any]], primary: str, higher: bool) -> None:
    ok = [r for r in rows if r.get(primary) is not None and r.get("ort_b1_ms") is not None]
    for r in ok:
        q, lat = r[primary] if higher else -r[primary], r["ort_b1_ms"]
        r["pareto"] = not any(
            ((o[primary] if higher else -o[primary]) >= q and o["ort_b1_ms"] <= lat)
            and ((o[primary] if higher else -o[primary]) > q or o["ort_b1_ms"] < lat) for o in ok if o is not r)


def _cached(store: ModelStore, task: str, fp: str) -> ModelVersion | None:
    for version in reversed(store.list(task=task)):
        if version.tags.get("fingerprint") == fp:
            return version
    return None


def select(catalogue: Catalogue, store: ModelStore, task_name: str, *, budget: str = "quick",
           candidates: list[str] | None = None, prescreen: str | None = None, top_k: int | None = None,
           max_latency_ms: float | None = None, max_params: float | None = None, max_size_mb: float | None = None,
           seeds: int = 1, no_cache: bool = False, offline: bool = False, data_dir: str | None = None,
           download: bool = False, device: str = "auto", quiet: bool = False, threads: int | None = None,
           recipe_overrides: dict[str, Any] | None = None) -> SelectResult:
    started = time.perf_counter()
    task = catalogue.tasks.get(task_name)
    primary = catalogue.metrics.get(task.primary_metric)
    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    refs = expand(catalogue, store, candidates or list(task.protocol.candidates))
    if not refs:
        raise UsageError(f"task {task.name} has no candidates; pass --candidates")
    checked = [check_available(catalogue, store, r, offline) for r in refs]
    missing = [c for c in checked if not c.available]
    if offline and missing:
        lines = "; ".join(f"{c.ref}: place {c.place}" for c in missing)
        raise UsageError(f"--offline: {len(missing)} candidate(s) need files first: {lines}")
    runnable = [c for c in checked if c.available]
    dev = select_device(device)
    recipe = recipe_for(task, budget, **(recipe_overrides or {}))
    input_size = recipe.input_size or task.protocol.input_size
    data_id = dataset_hash(catalogue, task.dataset, data_dir, input_size)
    say(f"select on {task.name} ({budget}): {len(runnable)} candidates"
        + (f", {len(missing)} skipped" if missing else ""), quiet)

    scores: dict[str, float] = {}
    if prescreen:
        from harness.select.prescreen import extract_features, score
        from harness.train.finetune import preprocess_for, subset

        train = subset(load_split(catalogue, task.dataset, "train", data_dir=data_dir, image_size=input_size),
                       1000, recipe.seed)
        for c in runnable:
            source = resolve_model(catalogue, store, c.ref)
            try:
                model = source.build(catalogue, int(train.labels.max()) + 1)
                pre = preprocess_for(source, task, recipe, augment=False)
                feats = extract_features(model, source.backbone.head, train.images, pre)
                scores[c.ref] = score(prescreen, feats, train.labels.numpy())
                say(f"  prescreen {prescreen} {c.ref}: {scores[c.ref]:.4f}", quiet)
            except (HarnessError, RuntimeError) as exc:
                say(f"  prescreen {c.ref} failed: {exc}", quiet)
        if top_k:
            ranked = sorted(runnable, key=lambda c: scores.get(c.ref, -math.inf), reverse=True)
            dropped = ranked[top_k:]
            runnable = ranked[:top_k]
            missing += [Candidate(c.ref, False, f"prescreen rank > top-{top_k} ({prescreen} {scores.get(c.ref)})")
                        for c in dropped]

    rows: list[dict[str, Any]] = []
    env = library_versions()
    for i, c in enumerate(runnable, 1):
        label = f"[{i}/{len(runnable)}] {c.ref}"
        prescore = scores.get(c.ref)
        row: dict[str, Any] = {"candidate": c.ref, "status": "ok",
                               "prescreen": None if prescore is None else round(prescore, 4)}
        rows.append(row)
        try:
            weights_id = weights_identity(catalogue, store, c.ref)
            runs = []
            for seed in range(seeds):
                seeded = recipe.__class__(**{**recipe.as_dict(), "seed": seed})
                fp = fingerprint(c.ref, weights_id, data_id, seeded.as_dict(), env, dev.type, seed)
                version = None if no_cache else _cached(store, task.name, fp)
                if version is not None:
                    say(f"{label}: seed {seed} cached as {version.ref}", quiet)
                    row["status"] = "cached"
                else:
                    say(f"{label}: fine-tune (seed {seed})", quiet)
                    result = finetune(catalogue, store, c.ref, task.name, seeded, data_dir=data_dir,
                                      download=download, device=device, quiet=True)
                    version = store.set_tags(result.version.ref, {"fingerprint": fp, "candidate": c.ref,
                                                                  "select": "1"})
                runs.append(version)
                say(f"{label}: seed {seed} {primary.name} {version.metrics['test'][primary.name]:.4f}", quiet)
            if prescore is not None:
                for v in runs:
                    store.update_metrics(v.ref, {"prescreen": {"method": prescreen, "score": round(prescore, 4)}})
            values = [v.metrics["test"][primary.name] for v in runs]
            mean, half = mean_ci(values)
            best = max(runs, key=lambda v: v.metrics["test"][primary.name] * (1 if primary.higher_is_better else -1))
            row.update({"model": best.ref, "fingerprint": best.tags.get("fingerprint"),
                        **{k: v for k, v in best.metrics["test"].items()}, primary.name: round(mean, 4)})
            if seeds > 1:
                row[f"{primary.name}_ci95"] = round(half, 4)
                row["seeds"] = seeds
            row["train_s"] = best.metrics.get("train", {}).get("seconds")
            if "parity" not in best.metrics or row["status"] != "cached":
                say(f"{label}: export + parity", quiet)
                parity = check_parity(catalogue, store, best.ref, task.name, samples=256, data_dir=data_dir)
            else:
                parity = best.metrics["parity"]
            row["parity"] = "passed" if parity["passed"] else "FAILED"
            row["exporter"] = parity.get("exporter")
            best = store.get(best.ref)
            if "bench" not in best.metrics or row["status"] != "cached":
                say(f"{label}: benchmark eager vs ONNX Runtime", quiet)
                report = bench(catalogue, store, best.ref, batch_sizes=(1, 32), runtimes=("torch", "onnxruntime"),
                               rounds=1 if budget == "quick" else 3, iters=5 if budget == "quick" else 10,
                               threads=threads)
            else:
                report = best.metrics["bench"]
            med = {(r["runtime"], r["batch"]): r for r in report["rows"]}
            row.update({
                "eager_b1_ms": med[("torch", 1)]["median_ms"], "ort_b1_ms": med[("onnxruntime", 1)]["median_ms"],
                "eager_b32_ms": med[("torch", 32)]["median_ms"], "ort_b32_ms": med[("onnxruntime", 32)]["median_ms"],
                "ort_b32_img_s": med[("onnxruntime", 32)]["images_per_s"],
                "params_m": round(report["params"] / 1e6, 3), "gflops": round(report["flops"] / 1e9, 4),
                "size_mb": report.get("onnx_size_mb"),
            })
        except HarnessError as exc:
            row.update({"status": "failed", "reason": str(exc)})
            say(f"{label}: FAILED: {exc}", quiet)
        except RuntimeError as exc:  # a candidate's own crash must not abort the run
            row.update({"status": "failed", "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            say(f"{label}: FAILED: {row['reason']}", quiet)

    done = [r for r in rows if r["status"] in ("ok", "cached") and r.get(primary.name) is not None]
    pareto(done, primary.name, primary.higher_is_better)
    eligible = []
    for r in done:
        why = []
        if r.get("parity") != "passed":
            why.append("ONNX parity failed")
        if max_latency_ms is not None and r["ort_b1_ms"] > max_latency_ms:
            why.append(f"ORT latency {r['ort_b1_ms']} ms > {max_latency_ms}")
        if max_params is not None and r["params_m"] * 1e6 > max_params:
            why.append(f"{r['params_m']}M params > {max_params / 1e6:g}M")
        if max_size_mb is not None and (r["size_mb"] or 0) > max_size_mb:
            why.append(f"{r['size_mb']} MB > {max_size_mb} MB")
        if why:
            r["excluded"] = "; ".join(why)
        else:
            eligible.append(r)
    winner = None
    if eligible:
        winner = max(eligible, key=lambda r: r[primary.name] if primary.higher_is_better else -r[primary.name])
        winner["chosen"] = True
        store.set_alias(winner["model"], "best")
    tau = None
    if prescreen:
        from harness.select.prescreen import kendall_tau

        pairs = [(scores[r["candidate"]], r[primary.name]) for r in done if r["candidate"] in scores]
        tau = kendall_tau([p[0] for p in pairs], [p[1] * (1 if primary.higher_is_better else -1) for p in pairs])
    skipped = [{"candidate": c.ref, "status": "skipped", "reason": c.reason, "place": c.place} for c in missing]
    return SelectResult(task.name, primary.name, primary.higher_is_better, rows, winner, tau, prescreen,
                        round(time.perf_counter() - started, 1), skipped)
