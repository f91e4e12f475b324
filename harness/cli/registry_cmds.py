"""``harness registry list|show|tag|history|rollback|remove|import|check``: the persistent model store."""

from __future__ import annotations

from typing import Any

import click

from harness.cli.app import HarnessGroup, fail, make_context
from harness.cli.options import format_option
from harness.output import render, render_record, to_json


def _store() -> Any:
    from registry.store import ModelStore

    return ModelStore()


def _row(v) -> dict:
    test = v.metrics.get("test", {})
    return {"model": v.ref, "aliases": list(v.aliases), "backbone": v.backbone, "kind": v.kind,
            "task": v.task, "parent": v.parent_ref, "accuracy": test.get("accuracy"),
            "created": v.as_dict()["created_at"]}


@click.group("registry", cls=HarnessGroup)
def registry_group() -> None:
    """The model store: every imported, pretrained and fine-tuned model version, with lineage.

    \b
    Examples:
      harness registry list
      harness registry show fashion-mnist:best
      harness registry check
    """


@registry_group.command("list")
@click.argument("name", required=False)
@click.option("--task", help="Only versions trained for this task.")
@format_option
def registry_list(name: str | None, task: str | None, fmt: str) -> None:
    """List model versions (all, or those of NAME).

    \b
    Examples:
      harness registry list
      harness registry list fashion-mnist --format json
    """
    with _store() as store:
        rows = [_row(v) for v in store.list(name, task)]
    click.echo(render(rows, fmt))


@registry_group.command("show")
@click.argument("ref")
@format_option
def registry_show(ref: str, fmt: str) -> None:
    """Show one version (NAME, NAME@VERSION or NAME:ALIAS): recipe, metrics, artifacts, lineage.

    \b
    Examples:
      harness registry show fashion-mnist:best
      harness registry show fashion-mnist@2 --format json
    """
    with _store() as store:
        version = store.get(ref)
        record = version.as_dict()
        record["lineage"] = [v.ref for v in store.lineage(ref)]
    if fmt == "json":
        click.echo(to_json(record))
    elif fmt == "csv":
        click.echo(render([record], "csv"))
    else:
        record["metrics"] = {k: v for k, v in record["metrics"].items() if k != "history"}
        click.echo(render_record(record))


@registry_group.command("tag")
@click.argument("ref")
@click.option("--alias", "aliases", multiple=True, help="Point NAME:ALIAS at this version (moves it).")
@click.option("--remove-alias", "removed", multiple=True, help="Delete NAME:ALIAS.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Set a tag (KEY= deletes it).")
def registry_tag(ref: str, aliases: tuple[str, ...], removed: tuple[str, ...], tags: tuple[str, ...]) -> None:
    """Set aliases and tags on a version.

    \b
    Examples:
      harness registry tag fashion-mnist@3 --alias production
      harness registry tag fashion-mnist@3 --tag owner=vision-team
    """
    from registry import UsageError

    parsed: dict[str, str | None] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {item!r}: use KEY=VALUE")
        parsed[key] = value or None
    with _store() as store:
        version = store.get(ref)
        for alias in aliases:
            store.set_alias(version.ref, alias, command=command_line())
        for alias in removed:
            store.remove_alias(version.name, alias, command=command_line())
        if parsed:
            store.set_tags(version.ref, parsed)
        version = store.get(version.ref)
    click.echo(f"{version.ref}: aliases {', '.join(version.aliases) or '-'}; "
               f"tags {', '.join(f'{k}={v}' for k, v in version.tags.items()) or '-'}")


@registry_group.command("history")
@click.argument("ref", metavar="NAME:ALIAS")
@format_option
def registry_history(ref: str, fmt: str) -> None:
    """Every recorded move of NAME:ALIAS: when, from which version to which, the command and (for a
    promotion by 'harness gate --apply') the evidence.

    \b
    Example:
      harness registry history fashion-mnist:production
    """
    from registry import UnknownNameError

    name, alias = _alias_ref(ref)
    with _store() as store:
        if name not in store.names():
            raise UnknownNameError("model", name, store.names())
        moves = [m.as_dict() for m in store.alias_history(name, alias)]
    if fmt == "json":
        click.echo(to_json(moves))
        return
    rows = [{**{k: m[k] for k in ("move", "at", "from", "to", "command")},
             "evidence": _evidence_text(m["evidence"])} for m in moves]
    click.echo(render(rows, fmt) if rows else f"{ref}: no recorded moves")


@registry_group.command("rollback")
@click.argument("ref", metavar="NAME:ALIAS")
def registry_rollback(ref: str) -> None:
    """Point NAME:ALIAS back at the version it held before its last move (recorded like any move).

    \b
    Example:
      harness registry rollback fashion-mnist:production
    """
    from registry import UsageError

    name, alias = _alias_ref(ref)
    with _store() as store:
        moves = store.alias_history(name, alias)
        undone, target = rollback_target(moves)
        if undone is None or target is None:
            raise UsageError(f"{ref} has no earlier holder to go back to (see 'harness registry history {ref}')")
        if not store.exists(target):
            raise UsageError(f"{ref}'s previous holder {target} was removed; point the alias at a version with "
                             "'harness registry tag REF --alias ...'")
        store.set_alias(target, alias, command=command_line(), expect=undone.to_ref or "",
                        evidence={"rollback_of": undone.id})
    click.echo(f"{ref}: {undone.to_ref or 'unset'} -> {target} (rolled back move {undone.id})")


def rollback_target(moves: list[Any]) -> tuple[Any, str | None]:
    """(the move a rollback undoes, the holder it goes back to): moves are replayed as a stack in
    which a rollback pops the move it undid, so repeated rollbacks step back through the history
    (4 -> 2 -> 1) instead of toggling between the last two holders."""
    stack: list[Any] = []
    for move in moves:
        if "rollback_of" in move.evidence and stack:
            stack.pop()
        else:
            stack.append(move)
    if not stack:
        return None, None
    return stack[-1], stack[-1].from_ref


def _alias_ref(ref: str) -> tuple[str, str]:
    from registry import UsageError
    from registry.store import parse_ref

    name, _, alias = parse_ref(ref)
    if alias is None:
        raise UsageError(f"{ref!r} names no alias; give NAME:ALIAS (e.g. {name}:production)")
    return name, alias


def _evidence_text(evidence: dict[str, Any]) -> str:
    if "verdict" in evidence:
        return str(evidence.get("summary", evidence["verdict"]))
    if "rollback_of" in evidence:
        return f"rollback of move {evidence['rollback_of']}"
    return ""


def command_line() -> str:
    """The command being run, as a user could paste it again (recorded with alias moves)."""
    import shlex
    import sys

    ctx = click.get_current_context(silent=True)
    args = ctx.meta.get("harness.argv") if ctx is not None else None
    return shlex.join(["harness", *(sys.argv[1:] if args is None else args)])


@registry_group.command("remove")
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also when other versions descend from it or it holds aliases (they "
                                            "are unset, and the moves recorded).")
def registry_remove(ref: str, force: bool) -> None:
    """Remove a version and (when unused) its artifact files.

    \b
    Examples:
      harness registry remove fashion-mnist@1
      harness registry remove fashion-mnist@2 --force
    """
    with _store() as store:
        version = store.remove(ref, force=force, command=command_line())
    click.echo(f"removed {version.ref}")


@registry_group.command("import")
@click.argument("backbone")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--name", help="Registry name (default: BACKBONE-FILESTEM).")
@click.option("--alias")
@format_option
@click.pass_context
def registry_import(ctx, backbone: str, path: str, name: str | None, alias: str | None, fmt: str) -> None:
    """Import a .safetensors or .pth state dict for BACKBONE (read with weights_only=True).

    \b
    Example:
      harness registry import resnet18 ./resnet18-finetuned.safetensors --name my-resnet --alias start
    """
    from harness.models.imports import import_weights

    with make_context(ctx) as hctx:
        version = import_weights(hctx, backbone, path, name=name, alias=alias)
    row = {**_row(version), "sha256": version.artifacts["weights"].sha256,
           "source_sha256": version.recipe.get("source_sha256"), "num_classes": version.num_classes}
    click.echo(to_json(row) if fmt == "json" else render([row], fmt))


@registry_group.command("check")
@click.option("--repair", is_flag=True, help="Apply the repairs that lose nothing (a link to the right file becomes a "
                                             "copy; other non-regular and unknown files are moved to HOME/lost+found; "
                                             "damaged ONNX records dropped), then check again.")
def registry_check(repair: bool) -> None:
    """Verify the database, every artifact's sha256, and that every file in the store is recorded;
    exit 1 on problems, each with what fixes it.

    \b
    Examples:
      harness registry check
      harness registry check --repair
    """
    from registry.integrity import find_problems
    from registry.integrity import repair as apply_repairs

    with _store() as store:
        if repair:
            for line in apply_repairs(store):
                click.echo(f"repaired: {line}", err=True)
        problems = find_problems(store)
        count = len(store.list()) if not any(p.kind == "database" for p in problems) else 0
    for problem in problems:
        click.echo(problem.text + (f" -> {problem.repair}" if problem.repair else ""), err=True)
    if problems:
        fail()
    click.echo(f"ok: {count} versions, all artifacts present and matching their sha256")
