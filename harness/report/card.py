"""``harness card MODEL``: a model card in the shape of Hugging Face's (YAML front matter, then
Markdown sections), written from what the store recorded about the version, so a card never
claims what was not measured.

Sections: model details (backbone, weights and their licence, lineage, aliases and their recorded
moves), intended use, training data (and, unless skipped, its data check: integrity, labels,
exact copies), evaluation (every metric on validation and test with the image sets they cover;
a 95% interval on test accuracy), calibration (ECE before and after temperature scaling fitted on
validation, from the stored predictions), deployment (ONNX parity, latency and size on the
machine that measured them, with that machine's load warnings), robustness (the corruption suite's
accuracy per corruption and severity on the ONNX file, and the relative drop with its interval; or
the command that measures it), environment, and how to reproduce it.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any

from registry import HarnessError, keys

if TYPE_CHECKING:
    from harness.context import Context
    from registry.store import ModelVersion


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def _md(text: str) -> str:
    """``text`` from the data (class names, file names) as literal Markdown: HTML escaped (a class
    named ``<img src=x onerror=...>`` must not become markup where the card is rendered) and
    Markdown's own characters backslash-escaped."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _front_matter(version: ModelVersion, licence: str | None, test: dict[str, Any]) -> list[str]:
    """Hugging Face's model-card metadata block (``license``, ``tags``, ``datasets``, ``metrics``)."""
    spdx = (licence or "").split(" ")[0]
    meta = {"library_name": "harness", "pipeline_tag": "image-classification",
            "license": spdx.lower() if re.fullmatch(r"[A-Za-z0-9.+-]+", spdx) else "other",
            "tags": ["image-classification", "pytorch", "onnx", version.backbone],
            "datasets": [version.dataset or version.task or "unknown"], "metrics": sorted(test)}
    lines = ["---"]
    for key, value in meta.items():
        lines.append(f"{key}: {json.dumps(value)}")
    return [*lines, "---", ""]


def _licence(ctx: Context, version: ModelVersion) -> tuple[str | None, str]:
    """(licence, where the starting weights came from) of the version's backbone and weight tag."""
    source = str(version.recipe.get("source") or version.backbone)
    try:
        backbone, tag = ctx.catalogue.backbone(source)
    except HarnessError:
        return None, f"`{source}` (not in this installation's catalogue)"
    if tag is None:
        return backbone.license, f"`{source}`, randomly initialised ({backbone.source or backbone.name})"
    return tag.license or backbone.license, f"`{source}`: {tag.dataset or 'pretrained'} weights, {tag.url or ''}"


def _metrics_table(version: ModelVersion) -> list[str]:
    from harness.evaluate.paired import binomial_halfwidth
    from harness.predictions.stored import stored_sets

    val, test = version.metrics.get(keys.VAL, {}), version.metrics.get(keys.TEST, {})
    failed = version.metrics.get(keys.TEST_FAILED, {})  # raised or returned NaN: shown empty, with why
    sets = stored_sets(version)
    lines = ["| metric | validation | test |", "| --- | --- | --- |"]
    for name in sorted(set(val) | set(test) | set(failed)):
        why = str(failed.get(name, "")).replace("|", "/")  # a table cell: no column separator inside
        cell = f"{test[name]:.4f}" if name in test else f"failed: {why}" if name in failed else ""
        if name == "accuracy" and name in test and "test" in sets:
            cell += f" ± {binomial_halfwidth(test[name], sets['test'].n):.4f}"
        lines.append(f"| {name} | {val.get(name, ''):{'.4f' if name in val else ''}} | {cell} |")
    lines.append("")
    # the images of the two columns (evaluate's own results, stored beside them, are not in the table)
    lines += list(dict.fromkeys(f"- {sets[k].text()}" for k in (keys.VAL, keys.TEST) if k in sets))
    if "accuracy" in test and "test" in sets:
        lines.append("- ± on test accuracy: a 95% interval over the test images (normal approximation).")
    return lines


def _calibration(version: ModelVersion) -> list[str]:
    from harness.predictions.calibration import from_version, stored_calibration

    found = stored_calibration(version) or from_version(version)
    if found is None:
        return ["Not available: this version has no stored predictions on validation and test."]
    return [f"Temperature scaling fitted on validation ({found.fitted_on}): T = {found.temperature:.3f}.",
            "", "| on test | before | after |", "| --- | --- | --- |",
            f"| ECE (15 bins) | {found.ece_before:.4f} | {found.ece_after:.4f} |",
            f"| negative log-likelihood | {found.nll_before:.4f} | {found.nll_after:.4f} |", "",
            f"Reported on {found.reported_on}. Dividing the logits by T changes no prediction, only the "
            "confidence. The exported ONNX model outputs the raw logits and carries T in its metadata "
            "(`temperature`): calibrated probabilities are `softmax(logits / temperature)`."]


def _robustness(version: ModelVersion) -> list[str]:
    from harness.evaluate.robustness import stored_report

    report = stored_report(version)
    if report is None:
        return [f"Not measured: `harness robustness {version.ref}` runs the corruption suite; the scores above are "
                "on clean test images."]
    low, high = report.drop_ci95 or (None, None)
    interval = f" (95% interval {low:.1%} to {high:.1%})" if low is not None and high is not None else ""
    drop = report.relative_drop
    lines = [f"Accuracy of the ONNX file on the suite's images ({report.images.text()}), clean and under "
             f"{len(report.by_corruption())} corruptions at 5 severities "
             "each (after ImageNet-C, Hendrycks & Dietterich 2019, with the authors' CIFAR-10-C parameters for "
             f"small images): clean {report.clean_accuracy:.4f}, mean over the corrupted sets "
             f"{report.corruption_accuracy:.4f}, relative drop {'-' if drop is None else f'{drop:.1%}'}{interval}.",
             "", "| corruption | 1 | 2 | 3 | 4 | 5 | mean |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in report.table():
        lines.append(f"| {row['corruption']} | " + " | ".join(f"{row[f's{i}']:.3f}" for i in range(1, 6))
                     + f" | {row['mean']:.3f} |")
    return lines


def _deployment(version: ModelVersion) -> list[str]:
    from harness.onnx.report import BenchReport

    lines = []
    parity = version.metrics.get(keys.PARITY)
    if parity:
        lines.append(f"- ONNX parity: {'passed' if parity['passed'] else 'FAILED'} on {parity['samples']} test images "
                     f"(max |diff| {parity['max_abs_diff']:.2g}, top-1 agreement {parity['top1_agreement']:.4f}, "
                     f"exporter {parity.get('exporter')})")
    stored = version.metrics.get(keys.BENCH)
    if stored:
        report = BenchReport.from_dict(stored)
        for row in report.rows:
            lines.append(f"- {row.runtime} batch {row.batch}: median {row.median_ms:.3f} ms, {row.images_per_s:.0f} "
                         f"images/s ({row.setup})")
        if report.onnx_size_mb:
            lines.append(f"- ONNX file: {report.onnx_size_mb:.2f} MB")
        if report.timing_problems:
            lines.append(f"- Timings may be off: {'; '.join(report.timing_problems)}")
        lines.append(f"- Measured with {report.threads} threads on the machine in *Environment*.")
    return lines or ["Not measured: run `harness check-onnx` and `harness bench` on this version."]


def _history(ctx: Context, version: ModelVersion) -> list[str]:
    lines = []
    for alias in version.aliases:
        for move in ctx.store.alias_history(version.name, alias):
            when = datetime.datetime.fromtimestamp(move.at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            why = move.evidence.get("summary") or ""
            lines.append(f"- {when}: `{version.name}:{alias}` {move.from_ref or 'unset'} -> {move.to_ref or 'unset'}"
                         + (f" ({why})" if why else "") + (f"; `{move.command}`" if move.command else ""))
    return lines


def _image_counts(images: Any) -> str:
    """``train 60,000, test 10,000`` (the data check's images per split), or one count."""
    if isinstance(images, dict):
        return ", ".join(f"{split} {count:,}" for split, count in images.items())
    return f"{images:,}" if isinstance(images, int) else str(images)


def _data(ctx: Context, version: ModelVersion, data_check: bool) -> list[str]:
    recipe = version.recipe
    lines = [f"Task `{version.task}` (dataset `{version.dataset}`), {version.num_classes} classes: "
             f"{', '.join(_md(name) for name in version.class_names or ())}.",
             f"Recipe: budget `{recipe.get('budget')}`, {recipe.get('epochs')} epochs, strategy "
             f"`{recipe.get('strategy')}`, input {recipe.get('input_size')} px, batch {recipe.get('batch_size')}, "
             f"lr {recipe.get('lr')}, seed {recipe.get('seed')}, best epoch {recipe.get('best_epoch')}."]
    if not data_check or not version.task:
        return [*lines, "", "Data check: not run for this card (`harness data check TASK` runs it)."]
    from harness.report.collect import _data_check

    found, why = _data_check(ctx, version.task)
    if found is None:
        return [*lines, "", f"Data check: {why}"]
    lines += ["", f"Data check ({_image_counts(found['images'])} images; near duplicates not searched, see "
                  f"`harness data check`): {found['errors']} error(s)."]
    lines += [f"- {f['severity']}: {f['check']}: {_md(str(f['detail']))} ({f['count']})" for f in found["findings"]]
    return lines


def card(ctx: Context, ref: str, *, data_check: bool = True) -> str:
    """The Markdown model card of registry version ``ref``."""
    from harness.report.collect import reproduce_command

    version = ctx.store.get(ref)
    licence, weights = _licence(ctx, version)
    test = version.metrics.get(keys.TEST, {})
    lineage = " <- ".join(f"`{v.ref}` ({v.kind}, {v.backbone})" for v in ctx.store.lineage(version.ref))
    command = reproduce_command(version)
    created = datetime.datetime.fromtimestamp(version.created_at, datetime.timezone.utc).strftime("%Y-%m-%d")
    sections = [
        *_front_matter(version, licence, test), f"# {version.ref}", "",
        f"An image classifier for task `{version.task}`: `{version.backbone}` fine-tuned by harness on {created}.",
        "", "## Model details", "",
        f"- Backbone: `{version.backbone}`; starting weights: {weights}", f"- Licence: {licence or 'unknown'}",
        f"- Lineage: {lineage}", f"- Aliases: {', '.join(f'`{version.name}:{a}`' for a in version.aliases) or 'none'}",
        *_history(ctx, version),
        "", "## Intended use", "",
        f"Classifying images like those of `{version.task}` into its {version.num_classes} classes, at "
        f"{version.recipe.get('input_size')} px after the recorded preprocessing. Not evaluated on other "
        "image sources: check it on your own images (`harness evaluate MODEL --task T`) before relying on it.",
        "", "## Training data", "", *_data(ctx, version, data_check),
        "", "## Evaluation", "", *_metrics_table(version),
        "", "## Calibration", "", *_calibration(version),
        "", "## Robustness", "", *_robustness(version),
        "", "## Deployment", "", *_deployment(version),
        "", "## Environment", "", *[f"- {k}: {v}" for k, v in version.environment.items()],
        "", "## How to reproduce", "", f"```bash\n{command}\n```" if command else "Not a fine-tune made by harness.",
        "",
    ]
    return "\n".join(sections)
