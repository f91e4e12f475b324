"""``harness gate`` (may a candidate replace an alias's holder?) and ``harness card`` (its model card)."""

from __future__ import annotations

from typing import Any

import click

from harness.cli.app import HarnessCommand, fail, make_context
from harness.cli.options import FiniteFloat, data_spec, format_option, task_source_options
from harness.output import render, to_json


@click.command("gate", cls=HarnessCommand)
@click.argument("candidate")
@click.option("--against", required=True, metavar="NAME:ALIAS",
              help="The alias the candidate would take, usually TASK:production (unset: a first promotion).")
@click.option("--min-delta", type=FiniteFloat(-100, 100, min_open=True, max_open=True), default=0.0,
              show_default=True,
              help="Points (x100) the 95% interval's lower end of candidate minus holder must exceed: 0 asks for "
                   "better beyond the noise, -0.5 for not worse by more than half a point.")
@click.option("--max-latency-ms", type=FiniteFloat(0, min_open=True),
              help="ONNX Runtime batch-1 median latency limit (measured now if never measured).")
@click.option("--max-size-mb", type=FiniteFloat(0, min_open=True), help="ONNX file size limit.")
@click.option("--max-robustness-drop", type=FiniteFloat(0, 1),
              help="Limit on the relative accuracy drop over the corruption suite, a fraction (0.15: 15%; "
                   "measured now on the ONNX file if never measured: 'harness robustness').")
@click.option("--max-ece", type=FiniteFloat(0, 1),
              help="Limit on test ECE after temperature scaling (the temperature in the ONNX metadata).")
@click.option("--parity/--no-parity", "require_parity", default=True, show_default=True,
              help="Require ONNX Runtime to agree with PyTorch (measured now if never measured).")
@click.option("--apply", is_flag=True, help="On a pass, move the alias to the candidate and record the move with "
                                            "the evidence ('harness registry history NAME:ALIAS').")
@task_source_options
@format_option
@click.pass_context
def gate_command(ctx: click.Context, candidate: str, against: str, min_delta: float, max_latency_ms: float | None,
                 max_size_mb: float | None, max_robustness_drop: float | None, max_ece: float | None,
                 require_parity: bool, apply: bool, fmt: str, **source: Any) -> None:
    """May CANDIDATE replace the holder of NAME:ALIAS? Both run now on the task's whole test split;
    the difference has a paired-bootstrap 95% interval. Exit 0 pass, 1 fail, 2 usage error.

    \b
    Examples:
      harness gate fashion-mnist@7 --against fashion-mnist:production --apply
      harness gate fashion-mnist@8 --against fashion-mnist:production --min-delta -0.5 --max-latency-ms 2
      harness gate fashion-mnist@9 --against fashion-mnist:production --max-robustness-drop 0.2 --max-ece 0.05
      harness registry history fashion-mnist:production    (every promotion, with its evidence)
      harness registry rollback fashion-mnist:production   (back to the previous holder, recorded)
    """
    from harness.cli.registry_cmds import command_line
    from harness.data.datatask import resolve
    from harness.evaluate.gate import GateConfig, gate

    config = GateConfig(candidate, against, min_delta, max_latency_ms, max_size_mb, require_parity,
                        max_robustness_drop=max_robustness_drop, max_ece=max_ece)
    data = data_spec(source)
    with make_context(ctx) as hctx:
        if data is not None:  # the models were trained on --data: that task is made here again
            resolve(hctx, None, data)
        if min_delta < -5:
            hctx.progress.warn(f"--min-delta {min_delta:g}: a candidate up to {-min_delta:g} points worse than the "
                               "holder can pass")
        verdict = gate(hctx, config, apply=apply, command=command_line())
    if fmt == "json":
        click.echo(to_json(verdict.as_dict()))
    else:
        rows = [{"condition": c.name, "passed": "yes" if c.passed else "NO", "limit": c.limit, "why": c.reason}
                for c in verdict.conditions]
        click.echo(render(rows, fmt))
    click.echo(verdict.summary(), err=True)
    if verdict.applied:
        click.echo(f"moved {verdict.alias}: {verdict.reference or 'unset'} -> {verdict.candidate} (recorded; "
                   f"undo with 'harness registry rollback {verdict.alias}')", err=True)
    elif apply:
        click.echo(f"{verdict.alias} not moved", err=True)
    if not verdict.passed:
        fail()


@click.command("card", cls=HarnessCommand)
@click.argument("model")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the card here (default: print it).")
@click.option("--data-check/--no-data-check", default=True, show_default=True,
              help="Run the task's data check (integrity, labels, exact copies) for the training-data section.")
@task_source_options
@click.pass_context
def card_command(ctx: click.Context, model: str, out: str | None, data_check: bool, **source: Any) -> None:
    """A model card (Markdown, Hugging Face's shape) for registry version MODEL, from what the store
    recorded: weights and licence, lineage and promotions, data and its check, metrics with image
    sets and intervals, calibration, parity and latency, environment, how to reproduce it.

    \b
    Example:
      harness card fashion-mnist:production --out MODEL_CARD.md
    """
    from pathlib import Path

    from harness.data.datatask import resolve
    from harness.report.card import card
    from registry.files import atomic_write_bytes, check_out_path

    if out:
        check_out_path(out, example="MODEL_CARD.md")  # before the data check reads every image
    data = data_spec(source)
    with make_context(ctx) as hctx:
        if data is not None:
            resolve(hctx, None, data)
        text = card(hctx, model, data_check=data_check)
    if out:
        atomic_write_bytes(Path(out), text.encode())
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text)
