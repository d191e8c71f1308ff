"""``python -m bench [--quick] [--json results.json] [--only KEY,...]``: print one table, write JSON."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone

from bench import Row
from bench.create_rows import rows_create_all, rows_create_onnx
from bench.executorch_rows import rows_executorch
from bench.interpreter_rows import rows_interpreter
from bench.latency_rows import rows_latency
from bench.parallel_rows import rows_parallel
from bench.registry_rows import rows_registry
from bench.storage_rows import rows_hash, rows_list
from bench.suite_rows import rows_suite
from bench.verify_rows import rows_fuzz, rows_imports, rows_parity, rows_polygraphy
from bench.workspace import Workspace

RowGroup = Callable[[Workspace, int, bool], list[Row]]

#: key -> (row function, what it needs); order is the table's order
ROWS: dict[str, RowGroup] = {
    "verify": lambda ws, n, q: rows_parity(ws, n),
    "polygraphy": lambda ws, n, q: rows_polygraphy(ws, n),
    "fuzz": lambda ws, n, q: rows_fuzz(ws, n),
    "imports": lambda ws, n, q: rows_imports(ws, n),
    "create_onnx": lambda ws, n, q: rows_create_onnx(ws, n),
    "create_all": lambda ws, n, q: rows_create_all(ws, n),
    "list": lambda ws, n, q: rows_list(ws, n, 1000 if q else 10_000),
    "hash": lambda ws, n, q: rows_hash(ws, n, 64 if q else 512),
    "parallel": lambda ws, n, q: rows_parallel(ws, 6 if q else 50),
    "latency": lambda ws, n, q: rows_latency(ws, 300 if q else 2000),
    "executorch_latency": lambda ws, n, q: rows_executorch(ws, 300 if q else 2000, "executorch_latency"),
    "executorch_export": lambda ws, n, q: rows_executorch(ws, 300 if q else 2000, "executorch_export"),
    "registry": rows_registry,
    "interpreter": lambda ws, n, q: rows_interpreter(ws, n),
    "suite": lambda ws, n, q: rows_suite(n),
}
#: rows run only when ``--only`` names them (the test suite takes ~10 minutes)
OPT_IN = frozenset({"suite"})


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def table(rows: list[Row]) -> str:
    head = ["row", "figure", "compared with", "value", "reference", "ratio", "goal", "met"]
    body = [
        [
            str(list(ROWS).index(r.key) + 1) if r.key in ROWS else "?",
            r.figure,
            r.compared_with,
            r.value,
            r.reference,
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
            r.goal,
            {True: "yes", False: "NO", None: "-"}[r.met],
        ]
        for r in rows
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    notes = [f"- row {list(ROWS).index(r.key) + 1}: {r.note}" for r in rows if r.note and r.key in ROWS]
    return "\n".join(lines + (["", "Notes:", *notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller fixtures")
    parser.add_argument("--json", dest="json_path", help="write the rows and the machine here")
    parser.add_argument(
        "--only",
        help=f"comma-separated row keys: {','.join(ROWS)} (default: all but {','.join(sorted(OPT_IN))})",
    )
    parser.add_argument("--repeats", type=int, help="timed runs per figure (default 5, 3 with --quick)")
    args = parser.parse_args(argv)
    wanted = {k.strip() for k in args.only.split(",")} if args.only else set(ROWS) - OPT_IN
    unknown = sorted(wanted - set(ROWS))
    keys = [k for k in ROWS if k in wanted]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; known: {', '.join(ROWS)}")
    repeats = args.repeats or (3 if args.quick else 5)
    started = time.perf_counter()
    rows: list[Row] = []
    failed = 0
    with Workspace() as ws:
        for key in keys:
            t0 = time.perf_counter()
            try:
                rows += ROWS[key](ws, repeats, args.quick)
            except Exception as exc:  # one broken row must not hide the others; it is reported as failed
                failed += 1
                traceback.print_exc()
                rows.append(Row(key, key, "-", "-", "-", None, "-", False, f"row failed: {exc}"))
            print(f"[bench] {key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))
    total = time.perf_counter() - started
    print(f"\n{machine()}; {repeats} timed runs per figure; total {total:.0f} s")
    if args.json_path:
        result = {
            "schema_version": 1,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": machine(),
            "quick": args.quick,
            "repeats": repeats,
            "total_seconds": round(total, 1),
            "rows": [r.as_dict() for r in rows],
        }
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
