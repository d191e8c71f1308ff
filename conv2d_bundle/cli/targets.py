"""``conv2d pack targets``: the installed targets, their formats, the checks they add, and what this host can
execute for each (with the reason when it cannot); a target with a second parity engine lists it under
``more_parity`` (ios: the ML Program reference interpreter, beside ``predict()``)."""

from __future__ import annotations

import ast
import json
from typing import Any

import click


def check_names(target: Any) -> list[str]:
    """The checks a target's module defines, read from its source (nothing is imported or run)."""
    tree = ast.parse(target.check_module_path.read_text(encoding="utf-8"))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def describe_targets() -> list[dict[str, Any]]:
    from conv2d_bundle.targets import registry

    rows = []
    for target in registry().values():
        capability = target.capability()
        rows.append(
            {
                **target.describe(),
                "exportable": target.exportable() is None,
                "export_needs": target.exportable(),
                "checks_added": ["test_format_built", "test_parity", *check_names(target)],
                "parity": capability.as_dict(),
            }
        )
    return rows


@click.command(name="targets")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
def targets_cmd(as_json: bool) -> None:
    """The installed deployment targets: format, checks, and whether this host can execute their parity."""
    rows = describe_targets()
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    for row in rows:
        parity = row["parity"]
        runs = "executes here" if parity["executes"] else f"not here: {parity['reason']}"
        export = "yes" if row["exportable"] else f"no: {row['export_needs']}"
        click.echo(f"{row['name']}  ({row['title']}, format {row['format']})")
        click.echo(f"  export here: {export}")
        click.echo(f"  parity: {row['runs_as']}: {runs}")
        for more in row.get("more_parity", ()):  # a second engine with its own check (ios: the interpreter)
            runs = "executes here" if more["executes"] else f"not here: {more['reason']}"
            click.echo(f"  parity ({more['check']}): {more['runs_as']}: {runs}")
        click.echo(f"  checks: {', '.join(row['checks_added'])}")
