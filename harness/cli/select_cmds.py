"""``harness select`` and ``harness leaderboard``."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from harness.cli.app import HarnessCommand, fail, make_context
from harness.cli.onnx_cmds import int8_options
from harness.cli.options import (
    INPUT_SIZE,
    FiniteFloat,
    budget_option,
    data_options,
    data_spec,
    executor_options,
    make_executor,
    positive_int,
    stack,
    strategy_choice,
    task_source_options,
    track_option,
)
from harness.output import to_json
from harness.select.config import PREFER, PRESCREENS, SelectConfig
from harness.select.leaderboard import LEADERBOARD_FORMATS
from harness.select.row import UNITS_NOTE, eval_set_lines
from harness.train.recipe import BUDGETS

view_options = stack(
    click.option("--wide", is_flag=True, help="Table: every column (default: the ones to decide with; notes below)."),
    click.option("--columns", help="Table/CSV: these columns, comma-separated (any key of --format json)."),
)


def split_columns(columns: str | None) -> list[str] | None:
    return [c.strip() for c in columns.split(",") if c.strip()] if columns else None


RECIPE_FLAGS = ("strategy", "epochs", "batch_size", "lr", "train_limit", "test_limit", "input_size")


@click.command("select", cls=HarnessCommand)
@click.option("--task", "task_name", help="A task (harness list tasks) or a task file (.toml); or use --data.")
@task_source_options
@budget_option
@click.option("--candidates", help="Comma-separated names, wildcards (resnet*, *.tv_in1k) or registry refs.")
@click.option("--prescreen", type=click.Choice(PRESCREENS), help="Score transferability first.")
@positive_int("--top-k", help="With --prescreen: fine-tune only the best K. With --then: train the K best on "
                              "validation again at the larger budget (default 2).")
@click.option("--prefer", type=click.Choice(PREFER), default="best", show_default=True,
              help="Among the candidates tied with the best on validation (paired 95% interval includes 0): "
                   "the best score, the fastest (ORT batch 1) or the smallest (ONNX MB).")
@click.option("--then", "then", type=click.Choice(BUDGETS[1:]),
              help="Train the --top-k best of --budget again at this larger budget and ship the best of those; "
                   "prints whether the first order held (tau, p-value, regret).")
@positive_int("--then-epochs", help="With --then: the larger budget's epochs.")
@click.option("--max-latency-ms", type=FiniteFloat(min=0, min_open=True),
              help="Constraint on ONNX Runtime batch-1 latency.")
@click.option("--max-params", type=FiniteFloat(min=0, min_open=True), help="Constraint on parameter count.")
@click.option("--max-size-mb", type=FiniteFloat(min=0, min_open=True), help="Constraint on the ONNX file size.")
@positive_int("--seeds", default=1, show_default=True, help="Runs per candidate (mean ± 95% CI).")
@click.option("--no-cache", is_flag=True, help="Retrain even when an identical run is in the store.")
@click.option("--offline", is_flag=True, help="Download nothing (no weights, no dataset): fail fast, listing the "
                                             "files to place.")
@click.option("--ignore-data-errors", is_flag=True, help="Go on when test images of your data are exact copies of "
                                                         "training images (harness data check lists them).")
@click.option("--strategy", type=strategy_choice, help="Fine-tuning strategy for every candidate (default: full).")
@positive_int("--epochs", help="Override the budget's epochs.")
@positive_int("--batch-size", help="Override the budget's batch size.")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), help="Override the budget's head learning rate.")
@positive_int("--train-limit", help="Seeded subset of N training images.")
@positive_int("--test-limit", help="Seeded subset of N test images.")
@click.option("--input-size", type=INPUT_SIZE, help="Override the protocol's input size.")
@positive_int("--threads", help="Threads for the latency benchmark.")
@click.option("--robustness/--no-robustness", default=None,
              help="The corruption suite (8 corruptions x 5 severities on 500 test images, on the ONNX file) for "
                   "every row, or for none. Default: for each row where it costs at most 10% of its training.")
@click.option("--int8", "int8", is_flag=True,
              help="Measure whether INT8 pays for each row: quantize its ONNX file, score it on validation and test, "
                   "time it against FP32 (3 interleaved rounds, batch 1 and 32); adds the int8 column.")
@int8_options
@click.option("--time-limit", help="Successive halving within this training time (90s, 10m, 1.5h, 1h30m): every "
                                   "candidate gets a short first rung, the best third continue.")
@click.option("--halving/--no-halving", default=None,
              help="Successive halving to the budget's epochs (every candidate a first rung, the best third "
                   "continue) or every candidate trained to the end. Default: the budget's (quick: halving "
                   "to 9 epochs) with one seed.")
@click.option("--format", "fmt", type=click.Choice(LEADERBOARD_FORMATS), default="table", show_default=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write accuracy vs latency PNG.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write the HTML report of the task (harness report) when done.")
@executor_options
@track_option
@view_options
@data_options
@click.pass_context
def select_command(ctx: click.Context, task_name: str | None, fmt: str, plot_path: str | None,
                   report_path: str | None, wide: bool, columns: str | None, **options: Any) -> None:
    """Fine-tune, evaluate, export, check and benchmark candidates on TASK; choose one to ship.

    \b
    Example:
      harness select --task fashion-mnist --budget quick
      harness select --task fashion-mnist --budget quick --then standard --then-epochs 10 --top-k 2
      harness select --data ./photos --budget quick --prefer fastest
      harness select --task cifar10 --candidates 'resnet18.tv_in1k,cifar_*' --prescreen knn --top-k 2
      harness select --task fashion-mnist --executor ray --cpus-per-trial 2
    """
    from harness.data.datatask import data_flags, resolve
    from harness.report import check_out_path
    from harness.select.run import select

    source = data_spec(options)
    if report_path:
        check_out_path(report_path, "report_path")
    runner = make_executor(*(options.pop(k) for k in EXECUTOR_FLAGS))
    context = {k: options.pop(k) for k in CONTEXT_FLAGS}
    if options["offline"]:
        context["download"] = False  # nor a missing dataset
    config = select_config(options)  # every flag checked before the data is read
    with make_context(ctx, **context) as hctx:
        result = select(hctx, dataclasses.replace(config, task=str(resolve(hctx, task_name, source))), runner)
    show_selection(result, fmt, wide, split_columns(columns), plot_path)
    for line in summary_lines(result, data_flags(source) if source is not None else None):
        click.echo(line, err=fmt != "table")
    if report_path:
        write_select_report(ctx, context, result.task, report_path, fmt, selected(result))
    if result.rows and not any(r.status in ("ok", "cached") for r in result.rows):
        fail("every candidate failed (the notes say why): nothing was chosen")


EXECUTOR_FLAGS = ("executor", "ray_address", "cpus_per_trial", "gpus_per_trial")
CONTEXT_FLAGS = ("data_dir", "download", "device", "quiet", "track")


def select_config(options: dict[str, Any]) -> SelectConfig:
    """``select``'s remaining flags as a :class:`~harness.select.config.SelectConfig` (its task
    filled in once resolved), built by the constructor the Python API uses too."""
    recipe = {k: options.pop(k) for k in RECIPE_FLAGS}
    return SelectConfig.from_options("", use_cache=not options.pop("no_cache"), recipe=recipe, **options)


def show_selection(result: Any, fmt: str, wide: bool, columns: list[str] | None, plot_path: str | None) -> None:
    """The leaderboard on stdout (with ``--then``, the first budget's table above it), and the plot."""
    from harness.select.leaderboard import plot, render_rows

    if fmt == "json":
        click.echo(to_json(result.as_dict()))
    else:
        if result.earlier is not None and fmt == "table":
            click.echo(f"{result.earlier.budget} budget:")
            click.echo(render_rows([*result.earlier.rows, *result.earlier.skipped], fmt, result.primary))
            click.echo(f"\n{result.budget} budget, the {len(result.rows)} best of {result.earlier.budget} "
                       "trained again:")
        click.echo(render_rows([*result.rows, *result.skipped], fmt, result.primary, wide=wide, columns=columns))
    if plot_path:
        plot(result.rows, result.primary, result.higher_is_better, plot_path, f"{result.task}: select")


def selected(result: Any) -> set[str]:
    """The candidates of this selection (with ``--then``, of both budgets)."""
    found: set[str] = set()
    while result is not None:
        found.update(r.candidate for r in [*result.rows, *result.skipped])
        result = result.earlier
    return found


def write_select_report(ctx: click.Context, context: dict[str, Any], task: str, path: str, fmt: str,
                        candidates: set[str] | None = None) -> None:
    """``select --report``: the HTML report of this selection's ``candidates`` once it is stored
    (untracked): not the rows earlier selections of the task left for candidates this one did not run."""
    from harness.report import check_out_path, collect, render
    from registry.files import atomic_write_bytes

    out = check_out_path(path, "report_path")
    with make_context(ctx, **{**context, "track": None}) as hctx:
        written = collect(hctx, task, candidates=candidates)
        atomic_write_bytes(out, render(written).encode())
    click.echo(wrote_line(path, written), err=fmt != "table")  # stdout stays JSON/CSV only


def wrote_line(path: str, data: Any) -> str:
    """What ``report`` and ``select --report`` say once the HTML file is written."""
    return f"wrote {path}: {len(data.rows)} candidates, chosen {data.chosen or 'none'}"


def summary_lines(result: Any, data: str | None = None) -> list[str]:
    """What select says under its table: image sets, units, time, rank agreements, the choice;
    ``data`` is the ``--data ...`` flags a ``--data`` task needs in the next command."""
    note = result.robustness_note()
    lines = [*eval_set_lines(result.rows), UNITS_NOTE, *([note] if note else []),
             f"wall time {result.seconds:.0f}s; seconds per stage:", *result.time_summary()]
    if result.rank_check is not None:
        lines.extend(result.rank_check.lines())
    if result.earlier is not None and result.earlier.rank_check is not None:
        lines.extend(result.earlier.rank_check.lines())
    if result.budget_check is not None:
        lines.extend(result.budget_check.lines())
    if result.winner:
        w = result.winner
        tied = [r.candidate for r in result.rows if r.tied and not r.chosen]
        pick = {"best": "best on validation", "fastest": "fastest", "smallest": "smallest"}[result.prefer]
        why = (f"best on validation, {result.primary} {w.val}" if not tied else
               f"{pick} of {len(tied) + 1} tied on validation ({', '.join(tied)} within the noise; --prefer "
               f"{result.prefer})")
        over = f" (means over {w.seeds} seeds; the version shipped is the best seed on validation)" \
            if w.seeds > 1 else ""
        lines.append(f"chosen: {w.model} ({w.candidate}; {why}; test {result.primary} {w.primary_value}{over}) "
                     f"-> alias {result.task}:best")
        lines.append(f"ship it: harness export {result.task}:best --out exports/   "
                     f"or load: harness evaluate {result.task}:best" + (f" {data}" if data else ""))
    else:
        lines.append("no candidate met every constraint; nothing chosen")
    return lines


@click.command("leaderboard", cls=HarnessCommand)
@click.option("--task", "task_name", help="A task (harness list tasks) or a task file (.toml); or use --data.")
@task_source_options
@click.option("--format", "fmt", type=click.Choice(LEADERBOARD_FORMATS), default="table", show_default=True,
              help="table is github; csv and json are for machines.")
@click.option("--sort", "sort_by", help="Metric or column to sort by (default: the task's primary metric).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write accuracy vs latency PNG.")
@view_options
@click.pass_context
def leaderboard_command(ctx: click.Context, task_name: str | None, fmt: str, sort_by: str | None,
                        plot_path: str | None, wide: bool, columns: str | None, **source: Any) -> None:
    """The stored leaderboard of a task: one row per candidate that select has run.

    \b
    Examples:
      harness leaderboard --task fashion-mnist
      harness leaderboard --task fashion-mnist --sort ort_b1_ms --wide
      harness leaderboard --task fashion-mnist --format json
    """
    from harness.data.datatask import resolve
    from harness.select.choose import sort_rows
    from harness.select.leaderboard import board_as_dict, plot, render_rows, rows_from_store, sort_direction

    with make_context(ctx) as hctx:
        task_name = str(resolve(hctx, task_name, data_spec(source)))
        task = hctx.catalogue.task(task_name)
        primary = hctx.catalogue.metrics.get(task.primary_metric)
        higher_first = sort_direction(hctx, task, sort_by) if sort_by else True
        rows = rows_from_store(hctx, task_name)
        if not rows:
            hctx.progress.warn(f"no select results for task {task.name!r} in {hctx.store.home}; run 'harness select "
                               f"--task {task.name}' (or point HARNESS_HOME at the store that has them)")
    if sort_by:
        rows = sort_rows(rows, sort_by, higher_first)
    if fmt == "json":  # an object with rows, as select's (the keys both have mean the same)
        click.echo(to_json(board_as_dict(task.name, primary.name, rows, sort_by)))
    else:
        click.echo(render_rows(rows, fmt, primary.name, wide=wide, columns=split_columns(columns)))
    unmeasured = [r.model for r in rows if r.status in ("ok", "cached") and r.corruption_acc is None]
    for line in eval_set_lines(rows) + ([f"robustness not measured for {len(unmeasured)} row(s): 'harness robustness "
                                         f"{unmeasured[0]}' (one model) or 'harness select --robustness' adds "
                                         "corruption_acc and robust_drop"] if unmeasured else []):
        click.echo(line, err=fmt != "table")
    if plot_path:
        plot(rows, primary.name, primary.higher_is_better, plot_path, f"{task.name} leaderboard")


@click.command("report", cls=HarnessCommand)
@click.option("--task", "task_name", help="A task (harness list tasks) or a task file (.toml); or use --data.")
@task_source_options
@click.option("--out", "out", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The HTML file to write.")
@click.option("--data-check/--no-data-check", default=True, show_default=True,
              help="Check the task's data (exact copies, labels, broken images) for the report.")
@data_options
@click.pass_context
def report_command(ctx: click.Context, task_name: str | None, out: str, data_check: bool, data_dir: str | None,
                   download: bool | None, device: str, quiet: bool, **source: Any) -> None:
    """Write one self-contained HTML file about a task's selection: the leaderboard, quality against
    latency, each candidate's training curves, confusion matrix, per-class F1, ONNX parity and the
    command that trains it again, the data check and the environment. Opens offline.

    \b
    Example:
      harness select --task fashion-mnist --budget quick
      harness report --task fashion-mnist --out report.html
    """
    from harness.data.datatask import resolve
    from harness.report import check_out_path, write_report

    check_out_path(out)
    with make_context(ctx, data_dir=data_dir, download=download, device=device, quiet=quiet) as hctx:
        task = str(resolve(hctx, task_name, data_spec(source)))
        data = write_report(hctx, task, out, data_check=data_check)
    click.echo(wrote_line(out, data))
