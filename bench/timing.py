"""Side-by-side timing: interleaved runs of a figure and its reference, medians, subprocess wall times."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PYTHON = sys.executable
BIN = Path(sys.executable).parent


class BenchError(RuntimeError):
    """A benchmarked command failed: its figure would mean nothing."""


def conv2d_cmd(*args: str) -> list[str]:
    """The installed CLI, as a user runs it."""
    return [str(BIN / "conv2d"), *args]


def wall(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ok: Sequence[int] = (0,),
) -> float:
    """Wall time of one whole process, in seconds; raise if it exits with an unexpected code."""
    start = time.perf_counter()
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        tail = (proc.stdout + proc.stderr).strip()[-600:]
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}: {tail}")
    return elapsed


def children_cpu() -> float:
    """CPU seconds (user + sys) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def side_by_side(
    runs: Mapping[str, Callable[[], float]],
    repeats: int,
    warmup: int = 1,
    cpu: dict[str, float] | None = None,
) -> dict[str, float]:
    """Run each callable ``warmup + repeats`` times, interleaved (a, b, a, b, ...); medians of the timed runs.
    With ``cpu``, also the median CPU time of the processes each run waited for (on 2 shared cores, wall
    time follows CPU: the figure that says where a ratio comes from)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + repeats):
        for name, fn in runs.items():
            before = children_cpu()
            t = fn()
            if i >= warmup:
                times[name].append(t)
                cpus[name].append(children_cpu() - before)
    if cpu is not None:
        cpu.update({name: statistics.median(cs) for name, cs in cpus.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def fmt_cpu(cpu: Mapping[str, float]) -> str:
    """``CPU (user+sys): a 0.52 s, b 0.28 s``."""
    return "CPU (user+sys): " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cpu.items())


#: dropped from benchmarked processes: what changes pytest's plugins, and ``PYTHONDONTWRITEBYTECODE`` (some VMs
#: set it: then every run compiles the editable package and re-rewrites the checks' assertions, ~60 ms of row 1,
#: a cost no installed package pays; the dropped warm-up run writes the bytecode)
CHILD_ENV_DROPPED = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for benchmarked processes: this one's, without ``CHILD_ENV_DROPPED``."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROPPED}
    env.update(extra)
    return env


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
