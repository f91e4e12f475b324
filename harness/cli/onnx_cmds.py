"""``harness export``, ``harness check-onnx`` and ``harness bench``."""

from __future__ import annotations

import json

import click

from harness.cli import cli, format_option, plugins_from
from harness.cli.train_cmds import open_store
from harness.output import render_rows


@cli.command("export")
@click.argument("model")
@click.option("--opset", type=int, default=18, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="exports", show_default=True)
@format_option
@click.pass_context
def export_command(ctx, model: str, opset: int, out_dir: str, fmt: str) -> None:
    """Export MODEL to ONNX (dynamic batch, input 'input', output 'logits', preprocessing in metadata).

    The file is checked with onnx.checker (full check) and registered with the model version.
    """
    from harness.parity import export_model

    catalogue = plugins_from(ctx).catalogue
    with open_store() as store:
        info, version = export_model(catalogue, store, model, out_dir, opset=opset)
    row = {"model": version.ref if version else model, **info.as_dict()}
    if info.fallback_reason:
        click.echo(f"harness: warning: the dynamo exporter failed ({info.fallback_reason}); "
                   "used the legacy TorchScript exporter", err=True)
    click.echo(json.dumps(row, indent=2) if fmt == "json" else render_rows([row], fmt))


@cli.command("check-onnx")
@click.argument("model_or_onnx")
@click.option("--task", "task_name", help="Task whose test images are used (default: the model's).")
@click.option("--samples", type=int, default=256, show_default=True)
@click.option("--atol", type=float, default=1e-4, show_default=True)
@click.option("--rtol", type=float, default=1e-3, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True, help="The batch besides batch 1.")
@click.option("--threads", type=int)
@click.option("--data-dir", type=click.Path(file_okay=False))
@format_option
@click.pass_context
def check_onnx_command(ctx, model_or_onnx, task_name, samples, atol, rtol, batch_size, threads, data_dir, fmt):
    """Check that ONNX Runtime matches PyTorch on the task's test images; exit 1 when it does not."""
    from harness.parity import check_parity

    catalogue = plugins_from(ctx).catalogue
    with open_store() as store:
        report = check_parity(catalogue, store, model_or_onnx, task_name, samples=samples, atol=atol, rtol=rtol,
                              batch_size=batch_size, data_dir=data_dir, threads=threads)
    click.echo(json.dumps(report, indent=2) if fmt == "json" else render_rows([report], fmt))
    if not report["passed"]:
        click.echo(f"parity FAILED: top-1 agreement {report['top1_agreement']:.4f}, max |diff| "
                   f"{report['max_abs_diff']:.3g} (atol {atol}, rtol {rtol})", err=True)
        ctx.exit(1)


@cli.command("bench")
@click.argument("model")
@click.option("--batch-sizes", default="1,32", show_default=True)
@click.option("--runtimes", default="torch,onnxruntime,onnxruntime-int8", show_default=True)
@click.option("--threads", type=int, help="Threads for every runtime (default: all cores).")
@click.option("--rounds", type=int, default=3, show_default=True, help="Interleaved rounds, one process each.")
@click.option("--iters", type=int, default=10, show_default=True, help="Timed iterations per round.")
@click.option("--task", "task_name", help="Task for INT8 calibration and accuracy (default: the model's).")
@click.option("--input-size", type=int, help="Benchmark at this input size (default: the model's).")
@click.option("--data-dir", type=click.Path(file_okay=False))
@format_option
@click.pass_context
def bench_command(ctx, model, batch_sizes, runtimes, threads, rounds, iters, task_name, input_size, data_dir, fmt):
    """Latency (median, p90) and throughput per runtime and batch size, with ORT/eager and INT8/FP32 ratios."""
    from harness.bench import bench
    from registry import UsageError

    try:
        sizes = tuple(int(b) for b in batch_sizes.split(",") if b.strip())
    except ValueError:
        raise UsageError(f"--batch-sizes {batch_sizes!r}: use comma-separated integers like 1,32") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes {batch_sizes!r}: give positive integers like 1,32")
    for flag, value in (("--threads", threads), ("--rounds", rounds), ("--iters", iters)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1")
    catalogue = plugins_from(ctx).catalogue
    with open_store() as store:
        report = bench(catalogue, store, model, batch_sizes=sizes, runtimes=tuple(runtimes.split(",")),
                       threads=threads, rounds=rounds, iters=iters, task_name=task_name, data_dir=data_dir,
                       input_size=input_size)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    if fmt == "csv":
        click.echo(render_rows(report["rows"], "csv"))
        return
    click.echo(f"{report['model']}: input {report['input']}, {report['params']:,} params, "
               f"{report['flops'] / 1e9:.3f} GFLOPs (2 per multiply-add), {report['threads']} threads")
    click.echo(render_rows(report["rows"], "table"))
    click.echo("speedups: " + ", ".join(f"{k} {v}x" for k, v in report["speedups"].items()))
    if "accuracy" in report:
        acc = report["accuracy"]
        click.echo(f"accuracy on {acc['samples']} test images: FP32 {acc['onnxruntime']:.4f}, "
                   f"INT8 {acc['onnxruntime-int8']:.4f} ({acc['int8_change_points']:+.2f} points)")
