"""Rows 11-13: ``conv2d pack push`` / ``pull`` of a bundle with a large weights file vs the same bytes sent and
fetched as blobs with plain HTTP requests in one short script (``bench/registry_floor.py``: standard library, one
connection, no checks of its own) against the same registry, and what a second push of it sends.

The registry is Debian's ``docker-registry`` (distribution 2.8) on loopback, storage in the workspace. Each
timed push goes to a new repository: distribution links blobs per repository, so nothing is skipped there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import Row
from bench.timing import BenchError, child_env, conv2d_cmd, fmt_cpu, fmt_s, side_by_side, wall
from bench.workspace import Workspace

FLOOR = Path(__file__).with_name("registry_floor.py")


class _Registry:
    def __init__(self, root: Path) -> None:
        exe = shutil.which("docker-registry") or shutil.which("registry")
        if exe is None:
            raise BenchError("docker-registry is not installed (apt-get install docker-registry)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = root / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self.proc = subprocess.Popen(
            [exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        import httpx

        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("docker-registry did not start")

    def cpu(self) -> float:
        """The registry process's CPU seconds (user + sys) so far, from /proc (0.0 where there is none)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _big_bundle(ws: Workspace, megabytes: int) -> Path:
    from conv2d_bundle.bundle.manifest import BundleManifest

    dst = ws.scratch("registry-artifacts") / ws.bundle.name
    shutil.copytree(ws.bundle, dst, ignore=shutil.ignore_patterns("validation"))
    with open(dst / "models" / "weights.bin", "wb") as f:
        for i in range(megabytes):
            f.write(hashlib.sha256(i.to_bytes(4, "big")).digest() * 32768)  # 1 MiB, no two alike
    BundleManifest.build(dst).write(dst)
    return dst


def rows_registry(ws: Workspace, repeats: int, quick: bool) -> list[Row]:
    megabytes = 64 if quick else 256
    bundle = _big_bundle(ws, megabytes)
    reg = _Registry(ws.scratch("registry"))
    env = child_env(CONV2D_CACHE=str(ws.root / "cache"))
    counter = {"push": 0, "floor": 0}

    def push() -> float:
        counter["push"] += 1
        ref = f"oci://127.0.0.1:{reg.port}/bench/push{counter['push']}:v1"
        return wall(conv2d_cmd("pack", "push", str(bundle), ref), env=env)

    def floor_push() -> float:
        counter["floor"] += 1
        return wall(
            [sys.executable, str(FLOOR), "push", str(reg.port), f"bench/floor{counter['floor']}", str(bundle)]
        )

    pulled = ws.root / "pulled"
    served: dict[str, list[float]] = {"pull": [], "floor": []}  # the registry's CPU per pull

    def pull() -> float:
        shutil.rmtree(pulled, ignore_errors=True)
        before = reg.cpu()
        t = wall(
            conv2d_cmd(
                "pack", "pull", f"oci://127.0.0.1:{reg.port}/bench/push1:v1", "--output-dir", str(pulled)
            ),
            env=env,
        )
        served["pull"].append(reg.cpu() - before)
        return t

    def floor_pull() -> float:
        shutil.rmtree(pulled, ignore_errors=True)
        before = reg.cpu()
        t = wall(
            [sys.executable, str(FLOOR), "pull", str(reg.port), "bench/floor1", str(bundle), str(pulled)]
        )
        served["floor"].append(reg.cpu() - before)
        return t

    try:
        cpu_push: dict[str, float] = {}
        cpu_pull: dict[str, float] = {}
        t_push = side_by_side({"push": push, "floor": floor_push}, repeats, cpu=cpu_push)
        t_pull = side_by_side({"pull": pull, "floor": floor_pull}, repeats, cpu=cpu_pull)
        again = subprocess.run(
            conv2d_cmd("pack", "push", str(bundle), f"oci://127.0.0.1:{reg.port}/bench/push1:v1", "--json"),
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if again.returncode != 0:
            raise BenchError(f"second push failed: {again.stderr.strip()[-300:]}")
        sent = json.loads(again.stdout)["bytes_sent"]
    finally:
        reg.stop()
        shutil.rmtree(pulled, ignore_errors=True)
    push_ratio = t_push["floor"] / t_push["push"]  # throughput ratio: ours / floor
    pull_ratio = t_pull["floor"] / t_pull["pull"]
    note = "whole processes; ours also checks sizes before push, and hashes every byte and checks MANIFEST.json and the EXP_HASH on pull"
    return [
        Row(
            "registry", f"push of a bundle with a {megabytes} MB weights file", "the same blobs, plain HTTP",
            fmt_s(t_push["push"]), fmt_s(t_push["floor"]), push_ratio, ">= 0.9x throughput", push_ratio >= 0.9,
            f"{note}; client {fmt_cpu(cpu_push)} (the registry's own CPU not counted)",
        ),
        Row(
            "registry", "pull of that bundle (verified)", "the same blobs, plain HTTP",
            fmt_s(t_pull["pull"]), fmt_s(t_pull["floor"]), pull_ratio, ">= 0.8x throughput", pull_ratio >= 0.8,
            f"{note}; client {fmt_cpu(cpu_pull)}; the registry serving it: "
            + ", ".join(f"{k} {statistics.median(v[1:]):.2f} s" for k, v in served.items() if v[1:]),  # no warm-up
        ),
        Row(
            "registry", "second push of the unchanged bundle: bytes sent", "0 weight bytes",
            f"{sent} B", "0 B", None, "0 bytes", sent == 0,
        ),
    ]  # fmt: skip
