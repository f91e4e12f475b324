"""One self-contained HTML file from :class:`ReportData`: inline CSS, charts as ``data:`` SVG images,
no script, and a Content-Security-Policy that forbids loading anything from anywhere, so it opens
the same offline, attached to an e-mail or in a CI artifact viewer."""

from __future__ import annotations

import base64
import math
import re
from html import escape
from typing import Any

from harness.report.collect import CandidateDetail, ReportData
from harness.report.svg import Point, curves_svg, pareto_svg, reliability_svg
from harness.select.row import eval_set_lines

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}td.t,th.t{text-align:left}tr.chosen td{background:#eef7ee;font-weight:600}
tr.failed td,tr.skipped td{color:#888}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.cm td{min-width:2.2em}.note{color:#666}section.candidate{border-top:1px dashed #ccc;margin-top:1.5em}
.scroll{overflow-x:auto}
#leaderboard td{white-space:nowrap}#leaderboard td.note{white-space:normal;min-width:18em}
.grid{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}img{max-width:100%}
.warning{background:#fff6e0;border:1px solid #e0b050;padding:.4em .8em;margin:.5em 0}
.warning ul{margin:.2em 0}
"""
COLUMNS = ("corruption_acc", "robust_drop", "ece_scaled", "ort_b1_ms", "ort_b32_img_s", "params_m", "gflops",
           "size_mb", "parity", "exporter", "pareto", "rung", "train_s")


def _v(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return escape(str(value))


def _img(svg: str, alt: str, cls: str) -> str:
    data = base64.b64encode(svg.encode()).decode()
    return f'<img class="{cls}" alt="{escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _anchor(candidate: str) -> str:
    return "c-" + re.sub(r"[^A-Za-z0-9_-]", "-", candidate)


def _leaderboard(data: ReportData) -> str:
    quality = [data.primary, *[m for m in ("macro_f1",) if m != data.primary and
                               any(m in r.metrics for r in data.rows)]]
    columns = [c for c in COLUMNS if any(getattr(r, c) is not None for r in data.rows)]  # no empty columns
    head = "".join(f"<th>{escape(c)}</th>" for c in ("val " + data.primary, "vs best (val)", *quality, *columns))
    lines = [f'<div class="scroll"><table id="leaderboard"><thead><tr><th>#</th><th class="t">candidate</th>'
             f'<th class="t">model</th><th class="t">status</th>{head}<th class="t">note</th></tr></thead><tbody>']
    for rank, row in enumerate(data.rows, 1):
        cls = "chosen" if row.chosen else row.status
        primary = _v(row.primary_value) + (f" ± {row.ci95:.3g}" if row.ci95 else "")
        val = _v(row.val) + (f" ± {row.val_ci95:.3g}" if row.val_ci95 else "")
        versus = (row.vs_best.text() + f" ({row.vs_best.p_text()})" if row.vs_best is not None
                  else ("best" if row.tied else ""))
        cells = [val, escape(versus + (" tied" if row.tied and row.vs_best is not None else "")), primary,
                 *(_v(row.metrics.get(m)) for m in quality[1:]), *(_v(getattr(row, c)) for c in columns)]
        note = row.reason or row.excluded or row.timing or ("chosen" if row.chosen else "")
        name = escape(row.candidate)
        link = f'<a href="#{_anchor(row.candidate)}">{name}</a>' if row.model else name
        lines.append(f'<tr class="row {cls}" data-candidate="{escape(row.candidate)}"><td>{rank}</td>'
                     f'<td class="t">{link}</td><td class="t">{_v(row.model)}</td><td class="t">{_v(row.status)}</td>'
                     + "".join(f"<td>{c}</td>" for c in cells) + f'<td class="t note">{_v(note)}</td></tr>')
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _pareto(data: ReportData) -> str:
    points = [Point(r.candidate, r.ort_b1_ms, r.primary_value, bool(r.pareto), r.chosen) for r in data.rows
              if r.ort_b1_ms and r.primary_value is not None and math.isfinite(r.primary_value)]
    svg = pareto_svg(points, "ONNX Runtime latency, batch 1 (ms)", data.primary,
                     f"{data.task}: {data.primary} against latency")
    note = ("" if len(points) == len([r for r in data.rows if r.status in ("ok", "cached")]) else
            '<p class="note">candidates without a latency (failed, or not benchmarked) are left out</p>')
    return _img(svg, f"Pareto plot of {data.primary} against latency", "pareto") + note


def _confusion(detail: CandidateDetail, names: tuple[str, ...]) -> str:
    matrix = detail.confusion
    if not matrix:
        return '<p class="note">confusion matrix not recorded (trained before harness recorded it; ' \
               f'<code>harness evaluate {escape(detail.row.model or "")}</code> prints it)</p>'
    labels = list(names) if len(names) == len(matrix) else [str(i) for i in range(len(matrix))]
    out = ['<table class="cm"><tr><th class="t">true \\ predicted</th>'
           + "".join(f"<th>{escape(n)}</th>" for n in labels) + "</tr>"]
    for name, row in zip(labels, matrix, strict=True):
        total = sum(row) or 1
        cells = "".join(f'<td style="background:rgba(31,119,180,{count / total:.2f})'
                        f'{";color:#fff" if count / total > 0.6 else ""}">{count}</td>' for count in row)
        out.append(f'<tr><th class="t">{escape(name)}</th>{cells}</tr>')
    return "".join(out) + "</table>"


def _per_class(detail: CandidateDetail) -> str:
    if not detail.per_class:
        return ""
    rows = "".join(f'<tr><td class="t">{_v(c.get("class"))}</td><td>{_v(c.get("precision"))}</td>'
                   f'<td>{_v(c.get("recall"))}</td><td>{_v(c.get("f1"))}</td><td>{_v(c.get("support"))}</td></tr>'
                   for c in detail.per_class)
    return ('<table class="per-class"><tr><th class="t">class</th><th>precision</th><th>recall</th><th>F1</th>'
            f"<th>support</th></tr>{rows}</table>")


def _curves(detail: CandidateDetail, primary: str) -> str:
    """Two charts over epochs: the loss, and the accuracies (train, and validation's primary metric):
    a loss of 2.3 on the axis of an accuracy of 0.6 would flatten both."""
    h = detail.history

    def series(*pairs: tuple[str, str]) -> list[tuple[str, list[tuple[float, float]]]]:
        found = [(name, [(float(e["epoch"]), float(e[key])) for e in h if e.get(key) is not None])
                 for name, key in pairs]
        return [(n, pts) for n, pts in found if pts]

    scores = "accuracy" if primary == "accuracy" else f"accuracy, {primary}"
    return "".join(_img(curves_svg(lines, "epoch", label, f"{detail.row.candidate}: {label}"),
                        f"{label} of {detail.row.candidate} over epochs", f"curves {cls}")
                   for cls, label, lines in (
                       ("loss", "training loss", series(("train loss", "train_loss"))),
                       ("scores", scores, series(("train accuracy", "train_accuracy"),
                                                 (f"validation {primary}", "val_metric")))))


def _timing_warning(data: ReportData) -> str:
    """Rows whose latencies should not be trusted (a busy machine, a wide spread), said above the
    leaderboard where it is seen, not in a column scrolled off to the right."""
    lines = [f"<li><b>{escape(r.candidate)}</b>: {escape(r.timing)}</li>" for r in data.rows if r.timing]
    if not lines:
        return ""
    return ('<div id="timing-warning" class="warning"><b>Latencies may be off</b> (measure again on a quiet '
            f"machine before relying on them):<ul>{''.join(lines)}</ul></div>")


def _dl(items: dict[str, Any]) -> str:
    return "<table>" + "".join(f'<tr><th class="t">{escape(str(k))}</th><td class="t">{_v(v)}</td></tr>'
                               for k, v in items.items()) + "</table>"


def _candidate(detail: CandidateDetail, data: ReportData) -> str:
    row, version = detail.row, detail.version
    parity = {k: detail.parity.get(k) for k in ("passed", "max_abs_diff", "top1_agreement", "accuracy_torch",
                                                  "accuracy_onnx", "samples", "exporter")} if detail.parity else {}
    command = (f"<pre class=\"command\">{escape(detail.command)}</pre>" if detail.command else
               '<p class="note">no fine-tune command recorded for this row</p>')
    lineage = f" from {escape(version.parent_ref)}" if version and version.parent_ref else ""
    return (f'<section class="candidate" id="{_anchor(row.candidate)}"><h3>{escape(row.candidate)} → '
            f'{_v(row.model)}{" (chosen)" if row.chosen else ""}</h3>'
            f'<p>{escape(data.primary)} {_v(row.primary_value)}; backbone {_v(version.backbone if version else None)}'
            f'{lineage}; seed {_v(version.seed if version else None)}</p>'
            f"<h4>Reproduce</h4>{command}"
            f'<div class="grid"><div><h4>Training</h4>{_curves(detail, data.primary)}</div>'
            f"<div><h4>Confusion matrix (test)</h4>{_confusion(detail, data.class_names)}</div>"
            f"<div><h4>Per class (test)</h4>{_per_class(detail)}</div>"
            f"<div><h4>ONNX Runtime parity</h4>{_dl(parity) if parity else '<p class=note>not checked</p>'}</div>"
            f"<div><h4>Robustness (corrupted test images)</h4>{_robustness(detail)}</div>"
            f"<div><h4>Calibration (test)</h4>{_reliability(detail)}</div>"
            "</div></section>")


def _robustness(detail: CandidateDetail) -> str:
    """The corruption x severity table of the candidate's ONNX file, or how to measure it."""
    report = detail.robustness
    if report is None:
        return (f'<p class="note">not measured: <code>harness robustness {escape(detail.row.model or "")}</code> (or '
                "<code>harness select --robustness</code>)</p>")
    head = "".join(f"<th>{i}</th>" for i in range(1, 6))
    rows = "".join(f'<tr><td class="t">{escape(r["corruption"])}</td>'
                   + "".join(f"<td>{r[f's{i}']:.3f}</td>" for i in range(1, 6)) + f'<td>{r["mean"]:.3f}</td></tr>'
                   for r in report.table())
    drop = report.relative_drop
    low, high = report.drop_ci95 or (None, None)
    interval = f" [{low:.1%}, {high:.1%}]" if low is not None and high is not None else ""
    return (f'<table class="robustness"><tr><th class="t">corruption \\ severity</th>{head}<th>mean</th></tr>{rows}'
            f'<tr><th class="t">clean</th><td colspan="6">{report.clean_accuracy:.3f}</td></tr></table>'
            f'<p class="note">accuracy of the ONNX file; mean over the {len(report.scores)} corrupted sets '
            f"{report.corruption_accuracy:.4f}, relative drop {'-' if drop is None else f'{drop:.1%}'}{interval} "
            f"(95% bootstrap interval over the images); {escape(report.images.text())}</p>")


def _reliability(detail: CandidateDetail) -> str:
    """The reliability diagram on test, before and after temperature scaling, with both ECEs."""
    if not detail.reliability:
        return '<p class="note">no stored predictions on test</p>'
    series = [(name, [(b.confidence, b.accuracy, b.count) for b in bins]) for name, bins in detail.reliability.items()]
    found = detail.calibration
    note = (f'<p class="note">test ECE (15 bins) {found.ece_before:.4f} on the raw logits, {found.ece_after:.4f} '
            f"after dividing them by T = {found.temperature:.3g}, fitted on {escape(found.fitted_on)}; T is in "
            "the ONNX file's metadata (<code>temperature</code>). Dots: bins, sized by their share of the images; "
            "on the dashed line confidence equals accuracy.</p>" if found else "")
    return _img(reliability_svg(series, f"{detail.row.candidate}: reliability on test"),
                f"reliability diagram of {detail.row.candidate}", "reliability") + note


def _data_check(data: ReportData) -> str:
    if data.data_check is None:
        return f'<p class="note">data check {escape(data.data_check_note or "not run")}</p>'
    check = data.data_check
    findings = check.get("findings") or []
    items = "".join(f"<li><b>{escape(str(f.get('severity')))}</b> {escape(str(f.get('check')))}: "
                    f"{escape(str(f.get('detail')))}</li>" for f in findings) or "<li>no findings</li>"
    summary = {"data": check.get("target"), "classes": check.get("classes"),
               "images": ", ".join(f"{k} {v}" for k, v in (check.get("images") or {}).items()),
               "errors": check.get("errors"), "seconds": check.get("seconds")}
    return (f'<div id="data-check">{_dl(summary)}<ul>{items}</ul><p class="note">exact copies, labels and image '
            f"integrity; near copies: <code>harness data check {escape(data.task)}</code></p></div>")


def render(data: ReportData) -> str:
    """The report as one HTML document."""
    chosen = data.winner
    verdict = (f"Chosen on validation: <b>{escape(chosen.candidate)}</b> ({_v(chosen.model)}, {escape(data.primary)} "
               f"{_v(chosen.val)} on validation, {_v(chosen.primary_value)} on test), alias "
               f"<code>{escape(data.task)}:best</code>." if chosen else
               "No candidate met every constraint; nothing was chosen.")
    details = "".join(_candidate(d, data) for d in data.details if d.version is not None)
    env = "".join(f"<h3>{escape(k)}</h3>{_dl(v)}" for k, v in data.environment.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harness report: {escape(data.task)}</title><style>{STYLE}</style></head>
<body>
<h1>harness report: {escape(data.task)}</h1>
<p>Dataset <b>{escape(data.dataset)}</b>; ranked by <b>{escape(data.primary)}</b>
({"higher" if data.higher_is_better else "lower"} is better); {len(data.rows)} candidates; written
{escape(data.generated)}.</p>
<p id="verdict">{verdict}</p>
<h2>Leaderboard</h2>
{_timing_warning(data)}
{_leaderboard(data)}
<p class="note">latency in ms (ONNX Runtime, CPU unless noted), throughput in images/s at batch 32, params in
millions, GFLOPs at the model's input size, size of the ONNX file in MB; ± is the 95% interval over seeds.
The choice is made on validation; test scores are reported and never used to choose. "vs best" is the row minus
the best on validation in points (x100), with a paired-bootstrap 95% interval over the validation images (and
seeds); "tied" rows are within the noise of the best.</p>
<p id="eval-sets">{"<br>".join(escape(line) for line in eval_set_lines(data.rows))}</p>
<h2>Quality against latency</h2>
{_pareto(data)}
<h2>Data check</h2>
{_data_check(data)}
<h2>Candidates</h2>
{details}
<h2>Environment</h2>
{env}
</body></html>
"""
