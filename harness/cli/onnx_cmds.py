"""``harness export``, ``harness check-onnx`` and ``harness bench``."""

from __future__ import annotations

import re
from typing import Any

import click

from harness.cli.app import HarnessCommand, fail, make_context
from harness.cli.options import (
    INPUT_SIZE,
    FiniteFloat,
    data_spec,
    format_option,
    positive_int,
    stack,
    task_source_options,
)
from harness.output import render, render_report, to_json
from registry import UsageError

int8_options = stack(
    click.option("--int8-max-drop", type=FiniteFloat(0, 100),
                 help="Accuracy points INT8 may lose on validation and still be offered  [default: 1.0]"),
    click.option("--int8-min-speedup", type=FiniteFloat(min=1),
                 help="How many times faster than FP32 (median) INT8 must be at every batch size; it must also "
                      "win each of 3 interleaved rounds  [default: 1.1]"),
)


def int8_policy(max_drop: float | None, min_speedup: float | None) -> Any:
    """The :class:`~harness.evaluate.int8.Int8Policy` of the ``--int8-*`` flags (defaults where not given)."""
    from harness.evaluate.int8 import Int8Policy

    given: dict[str, Any] = {k: v for k, v in (("max_drop_points", max_drop), ("min_speedup", min_speedup))
                             if v is not None}
    return Int8Policy(**given)


@click.command("export", cls=HarnessCommand)
@click.argument("model")
@click.option("--opset", type=int, default=18, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="exports", show_default=True)
@click.option("--int8", is_flag=True, help="Also write NAME.int8.onnx, but only when INT8 is measured faster than FP32 "
                                           "here (every batch, every round) and within --int8-max-drop on validation.")
@click.option("--force-int8", is_flag=True, help="Write the INT8 file even when it does not pay (and say so).")
@int8_options
@click.option("--task", "task_name", help="With --int8: the task whose images calibrate and score it (default: the "
                                          "model's).")
@positive_int("--threads", help="With --int8: threads for both runtimes (default: harness --threads).")
@format_option
@click.pass_context
def export_command(ctx: click.Context, model: str, opset: int, out_dir: str, int8: bool, force_int8: bool,
                   int8_max_drop: float | None, int8_min_speedup: float | None, task_name: str | None,
                   threads: int | None, fmt: str) -> None:
    """Export MODEL to ONNX (dynamic batch, input 'input', output 'logits', preprocessing in metadata).

    The file is checked with onnx.checker (full check) and registered with the model version.
    With --int8, an INT8 file is written beside it only when it pays on this machine; otherwise one
    line says why, with the figures, and only the FP32 file is written.

    \b
    Examples:
      harness export fashion-mnist:best --out exports/
      harness export fashion-mnist:best --out exports/ --int8
    """
    from harness.onnx.export import export_model
    from registry.files import check_out_path

    int8 = int8 or force_int8
    flags = {"task_name": task_name, "int8_max_drop": int8_max_drop, "int8_min_speedup": int8_min_speedup,
             "threads": threads}
    given = [k for k, v in flags.items() if v is not None]
    if not int8 and given:
        raise UsageError("{param} only applies to INT8: add --int8", param=given[0])
    policy = int8_policy(int8_max_drop, int8_min_speedup)
    check_out_path(out_dir, "out_dir", folder=True)
    with make_context(ctx) as hctx:
        if int8:
            from harness.evaluate.int8_check import export_int8, int8_task
            from harness.models.sources import resolve_model

            int8_task(hctx, resolve_model(hctx, model), task_name)  # a model with no task fails before any work
        result = export_model(hctx, model, out_dir, opset=opset)
        if result.info.fallback_reason:
            hctx.progress.warn(f"the dynamo exporter failed ({result.info.fallback_reason}); "
                               "used the legacy TorchScript exporter")
        quantized = export_int8(hctx, model, result.info.path, force=force_int8, task_name=task_name,
                                policy=policy, threads=threads) if int8 else None
    row = {"model": result.version.ref if result.version else model, **result.info.as_dict()}
    if quantized is not None:
        row.update(quantized.as_dict())
        line = quantized.verdict.line()
        click.echo(f"wrote {quantized.path}. {line}" if quantized.verdict.offered else
                   f"wrote {quantized.path} because of --force-int8. {line}" if quantized.forced else
                   f"{line}. Wrote only the FP32 file (--force-int8 writes the INT8 one anyway)", err=True)
    if fmt != "json":
        row.pop("int8_verdict", None)
    click.echo(to_json(row) if fmt == "json" else render([row], fmt))


@click.command("check-onnx", cls=HarnessCommand)
@click.argument("model_or_onnx")
@click.option("--task", "task_name", help="Task whose test images are used (default: the model's).")
@task_source_options
@positive_int("--samples", default=256, show_default=True)
@click.option("--atol", type=FiniteFloat(min=0), default=1e-4, show_default=True)
@click.option("--rtol", type=FiniteFloat(min=0), default=1e-3, show_default=True)
@positive_int("--batch-size", default=16, show_default=True, help="The batch besides batch 1.")
@positive_int("--threads")
@click.option("--data-dir", type=click.Path(file_okay=False))
@format_option
@click.pass_context
def check_onnx_command(ctx: click.Context, model_or_onnx: str, task_name: str | None, samples: int, atol: float,
                       rtol: float, batch_size: int, threads: int | None, data_dir: str | None, fmt: str,
                       **source: Any) -> None:
    """Check that ONNX Runtime matches PyTorch on the task's test images; exit 1 when it does not.

    \b
    Examples:
      harness check-onnx fashion-mnist:best
      harness check-onnx exports/fashion-mnist-3.onnx --task fashion-mnist --samples 512
    """
    from harness.data.datatask import resolve
    from harness.onnx.parity import check_parity

    with make_context(ctx, data_dir=data_dir) as hctx:
        task_name = resolve(hctx, task_name, data_spec(source), required=False)
        report = check_parity(hctx, model_or_onnx, task_name, samples=samples, atol=atol, rtol=rtol,
                              batch_size=batch_size, threads=threads)
    click.echo(to_json(report.as_dict()) if fmt == "json" else render([report.as_dict()], fmt))
    if not report.passed:
        fail(f"parity FAILED: top-1 agreement {report.top1_agreement:.4f}, max |diff| {report.max_abs_diff:.3g} "
             f"(atol {atol}, rtol {rtol})")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``1,32`` as (1, 32); an empty item (``1,,32``), a repeat or a non-positive size is refused."""
    parts = [b.strip() for b in text.split(",")]
    if not all(re.fullmatch(r"[+-]?[0-9]+", b) for b in parts):  # int() would also take 1_000 and other scripts' digits
        raise UsageError(f"{{param}} {text!r}: use comma-separated integers like 1,32", param="batch_sizes")
    sizes = tuple(int(b) for b in parts)
    if min(sizes) < 1:
        raise UsageError(f"{{param}} {text!r}: give positive integers like 1,32", param="batch_sizes")
    if len(set(sizes)) < len(sizes):
        repeated = sorted({b for b in sizes if sizes.count(b) > 1})
        raise UsageError(f"{{param}} {text!r}: {', '.join(map(str, repeated))} given more than once; name each "
                         "size once", param="batch_sizes")
    return sizes


def setup_lines(report: Any) -> list[str]:
    """How each runtime was run, once per runtime when every batch size ran the same way."""
    lines = []
    for runtime in dict.fromkeys(r.runtime for r in report.rows):
        rows = [r for r in report.rows if r.runtime == runtime and r.setup]
        if len({r.setup for r in rows}) == 1:
            lines.append(f"  {runtime}: {rows[0].setup}")
        else:
            lines += [f"  {runtime} b{r.batch}: {r.setup}" for r in rows]
    return ["how each runtime ran:", *lines] if lines else []


@click.command("bench", cls=HarnessCommand)
@click.argument("model")
@click.option("--batch-sizes", default="1,32", show_default=True)
@click.option("--runtimes", help="Comma-separated, of torch, onnxruntime, onnxruntime-int8 (default: all three; "
              "INT8 only where the model has a task or --task names one).")
@positive_int("--threads", help="Threads for every runtime (default: all cores).")
@positive_int("--rounds", default=3, show_default=True, help="Interleaved rounds, one process each.")
@positive_int("--iters", default=10, show_default=True, help="Timed iterations per round.")
@click.option("--task", "task_name", help="Task for INT8 calibration and accuracy (default: the model's).")
@task_source_options
@click.option("--input-size", type=INPUT_SIZE, help="Benchmark at this input size (default: the model's).")
@int8_options
@click.option("--data-dir", type=click.Path(file_okay=False))
@format_option
@click.pass_context
def bench_command(ctx: click.Context, model: str, batch_sizes: str, runtimes: str | None, data_dir: str | None,
                  fmt: str, int8_max_drop: float | None, int8_min_speedup: float | None, **options: Any) -> None:
    """Latency (median, p90) and throughput per runtime and batch size, with ORT/eager and INT8/FP32 ratios,
    and whether INT8 is offered (faster than FP32 in every round and within --int8-max-drop on validation).

    \b
    Examples:
      harness bench fashion-mnist:best
      harness bench fashion-mnist:best --batch-sizes 1,8,32 --runtimes onnxruntime --threads 2
    """
    from harness.evaluate.int8_check import bench_int8

    sizes = parse_batch_sizes(batch_sizes)
    from harness.data.datatask import resolve

    source = data_spec(options)
    with make_context(ctx, data_dir=data_dir) as hctx:
        options["task_name"] = resolve(hctx, options.get("task_name"), source, required=False)
        chosen = tuple(runtimes.split(",")) if runtimes else None
        report, verdict = bench_int8(hctx, model, batch_sizes=sizes, runtimes=chosen,
                                     policy=int8_policy(int8_max_drop, int8_min_speedup), **options)
    data = report.as_dict()
    machine = render_report(data, data["rows"], fmt)
    if machine is not None:
        click.echo(machine)
        return
    click.echo(f"{report.model}: input {list(report.input)}, {report.params:,} params, "
               f"{report.flops / 1e9:.3f} GFLOPs (2 per multiply-add), {report.threads} threads")
    hidden = ("setup", "round_medians_ms")
    click.echo(render([{k: v for k, v in row.items() if k not in hidden} for row in data["rows"]], "table"))
    click.echo("speedups: " + ", ".join(f"{k} {v}x" for k, v in report.speedups.items()))
    for line in setup_lines(report):
        click.echo(line)
    if report.accuracy is not None:
        acc = report.accuracy
        click.echo(f"accuracy on {acc.samples} test images: FP32 {acc.fp32:.4f}, INT8 {acc.int8:.4f} "
                   f"({acc.change_points:+.2f} points)")
    if verdict is not None:
        click.echo(verdict.line())
