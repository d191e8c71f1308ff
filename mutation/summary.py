"""Print the figures of the last ``mutmut run``: mutants per module by outcome, the kill rate, every survivor.

Run from the project root after ``mutmut run`` (``make mutation`` does). Reads mutmut's own result files
(``mutants/<path>.meta``); each survivor is given as ``file:line  function: -old  +new`` from mutmut's diff.
Exit status 0; the figures are for tests/README.md, not a gate (yet).
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

COLUMNS = ["killed", "survived", "timeout", "error", "no tests", "suspicious", "not checked"]
# kill rate = killed / checked: a timeout is listed with the survivors, not counted as a kill (a slow machine
# makes them too), and "no tests" (no test of the selection reached the function) counts against the rate.
# Exit 255 is not a timeout, whatever mutmut 3.8 calls it: its child raised instead of reporting pytest's exit
# status, mostly pytest's exit 4 (a usage error: a test id of the mutant's list not found, or a mutant that breaks
# the plugin's options). Listed as "error" so that a harness fault is not mistaken for a slow mutant.
HARNESS_ERROR = 255


def status(code: int | None) -> str:
    return "error" if code == HARNESS_ERROR else str(status_by_exit_code[code])


HUNK = re.compile(r"^@@ -(\d+)")


def def_lines(path: Path) -> dict[str, int]:
    """Mangled function name (x_f, xǁClassǁm) -> line of its ``def`` in the source file."""
    out: dict[str, int] = {}

    def visit(body: list[ast.stmt], cls: str | None) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                out[f"xǁ{cls}ǁ{node.name}" if cls else f"x_{node.name}"] = node.lineno
            elif isinstance(node, ast.ClassDef) and cls is None:
                visit(node.body, node.name)

    visit(ast.parse(path.read_text()).body, None)
    return out


def describe(key: str, path: Path, defs: dict[str, int]) -> str:
    """``path:line  function: -old / +new`` for one mutant."""
    mangled = key.rpartition(".")[2].rpartition("__mutmut_")[0]
    diff = get_diff_for_mutant(key, path=path).splitlines()
    body = diff[2:]  # after the ---/+++ header
    first = next(
        (i for i, line in enumerate(body) if line[1:].lstrip().startswith(("def ", "async def "))), 1
    )
    line = defs.get(mangled, 0)
    old = new = ""
    offset = 0
    for raw in body:
        if m := HUNK.match(raw):
            offset = int(m.group(1)) - 1 - (first - 1)  # lines of the hunk start counted from the def line
            continue
        if raw.startswith("-") and not old:
            old = raw[1:].strip()
            line += offset
        elif raw.startswith("+") and not new:
            new = raw[1:].strip()
        if not raw.startswith(("-", "+")):
            offset += 1
    func = mangled.removeprefix("x_").replace("ǁ", ".").lstrip("x.")
    return f"{path}:{line}  {func}: -{old}  +{new}"


def main() -> int:
    config()  # reads [tool.mutmut] from ./pyproject.toml
    rows: list[tuple[str, Counter[str]]] = []
    survivors: list[str] = []
    for path in sorted(walk_mutatable_files()):
        data = SourceFileMutationData(path=path)
        data.load()
        counts = Counter(status(code) for code in data.exit_code_by_key.values())
        rows.append((str(path), counts))
        defs = def_lines(path)
        for key, code in sorted(data.exit_code_by_key.items(), key=lambda kv: kv[0]):
            # not checked: outside MUTANTS
            if status(code) not in ("killed", "not checked"):
                survivors.append(f"  [{status(code)}] {describe(key, path, defs)}")
    if not rows or not any(sum(c.values()) for _, c in rows):
        print("no mutation results under mutants/: run `make mutation` first")
        return 1
    width = max(len(name) for name, _ in rows)
    print(f"{'module':{width}}  {'mutants':>7}  " + "  ".join(f"{c:>11}" for c in COLUMNS) + "  kill rate")
    total: Counter[str] = sum((counts for _, counts in rows), Counter())
    for name, counts in [*rows, ("total", total)]:
        n = sum(counts.values())
        checked = n - counts["not checked"]
        rate = f"{100 * counts['killed'] / checked:5.1f}%" if checked else "    -"
        print(f"{name:{width}}  {n:>7}  " + "  ".join(f"{counts[c]:>11}" for c in COLUMNS) + f"  {rate}")
    other = {k: v for k, v in total.items() if k not in COLUMNS}
    if other:
        print(f"other outcomes: {dict(other)}")
    print(f"\nnot killed ({len(survivors)}):")
    print("\n".join(survivors) or "  none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
