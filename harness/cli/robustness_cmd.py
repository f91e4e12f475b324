"""``harness robustness MODEL``: the corruption suite on one registry version's ONNX file."""

from __future__ import annotations

from typing import Any

import click

from harness.cli.app import HarnessCommand, make_context
from harness.cli.options import data_spec, format_option, positive_int, task_source_options
from harness.output import render, to_json


@click.command("robustness", cls=HarnessCommand)
@click.argument("model")
@click.option("--task", "task_name", help="Task whose test images are corrupted (default: the model's).")
@task_source_options
@positive_int("--samples", default=500, show_default=True, help="Seeded test images (41 passes over them).")
@click.option("--corruptions", help="Comma-separated subset (default: all 8; harness robustness --help lists them).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Draws the images and the noise.")
@positive_int("--threads", help="ONNX Runtime threads.")
@click.option("--no-record", is_flag=True, help="Do not store the result with the version.")
@format_option
@click.pass_context
def robustness_command(ctx: click.Context, model: str, task_name: str | None, samples: int, corruptions: str | None,
                       seed: int, threads: int | None, no_record: bool, fmt: str, **source: Any) -> None:
    """Accuracy of registry version MODEL's ONNX file on corrupted test images: gaussian_noise,
    shot_noise, impulse_noise, gaussian_blur, contrast, brightness, jpeg, pixelate, each at
    severities 1-5 (ImageNet-C's protocol with CIFAR-10-C's 32 px parameters); the mean over the 40
    (corruption accuracy) and its relative drop from clean, with 95% intervals over the images.
    Recorded with the version: select's columns, the report, the card and 'harness gate
    --max-robustness-drop' read it.

    \b
    Example:
      harness robustness fashion-mnist:best
      harness robustness fashion-mnist@3 --corruptions gaussian_noise,jpeg --samples 2000 --format json
    """
    from harness.data.datatask import resolve
    from harness.evaluate.robustness import RobustnessReport, check_options, measure_robustness

    names = tuple(c.strip() for c in corruptions.split(",") if c.strip()) if corruptions is not None else None
    check_options(samples, names)
    with make_context(ctx) as hctx:
        task = resolve(hctx, task_name, data_spec(source), required=False)
        report = measure_robustness(hctx, model, task, samples=samples, seed=seed, corruptions=names,
                                    threads=threads, record=not no_record)
    assert isinstance(report, RobustnessReport)  # no time limit: the suite always runs
    if fmt == "json":
        click.echo(to_json({**report.as_dict(), "table": report.table()}))
    else:
        click.echo(render(report.table(), fmt))
    click.echo(report.summary(), err=fmt != "table")
