"""scripts/system-packages.sh, which `make test` runs first, against stub commands on a PATH of their own: it
installs exactly the missing packages (as root directly, otherwise through passwordless sudo) and, where it
cannot, stops with one line naming the packages and the command to run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "system-packages.sh"
BASH = "/bin/bash"  # by absolute path: the stubs' directory is the whole PATH
ALL_COMMANDS = ("docker-registry", "sshd", "ssh", "rsync")


def _stub(bin_dir: Path, name: str, body: str = "") -> None:
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)


def _run(
    tmp_path: Path, present: tuple[str, ...], *, uid: int, sudo: str | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with only ``present`` of the tested-for commands installed; ``sudo``: None (no sudo),
    "nopasswd" or "password" (``sudo -n`` refuses). Returns the process and the stubs' calls, in order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in present:
        _stub(bin_dir, name)
    _stub(bin_dir, "id", f"echo {uid}")
    _stub(bin_dir, "apt-get")
    _stub(bin_dir, "systemctl")
    if sudo is not None:
        _stub(bin_dir, "sudo", 'if [ "$2" = true ]; then exit 1; fi' if sudo == "password" else "")
    calls = tmp_path / "calls"
    calls.touch()
    p = subprocess.run(
        [BASH, str(SCRIPT)],
        env={"PATH": str(bin_dir), "CALLS": str(calls)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return p, calls.read_text().splitlines()


@pytest.mark.parametrize("uid", [0, 1000])
def test_nothing_missing_installs_nothing(tmp_path: Path, uid: int) -> None:
    p, calls = _run(tmp_path, ALL_COMMANDS, uid=uid)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert calls == []


def test_as_root_installs_exactly_the_missing_packages(tmp_path: Path) -> None:
    p, calls = _run(tmp_path, ("sshd", "ssh"), uid=0)
    assert p.returncode == 0, p.stderr
    assert calls == [
        "id -u",
        "apt-get update -qq",
        "apt-get install -y -qq docker-registry rsync",
        "systemctl disable --now docker-registry.service",
    ]


def test_without_root_uses_passwordless_sudo(tmp_path: Path) -> None:
    p, calls = _run(tmp_path, ("sshd", "ssh", "rsync"), uid=1000, sudo="nopasswd")
    assert p.returncode == 0, p.stderr
    sudo = "sudo -n env DEBIAN_FRONTEND=noninteractive"
    assert calls == [
        "id -u",
        "sudo -n true",
        f"{sudo} apt-get update -qq",
        f"{sudo} apt-get install -y -qq docker-registry",
        f"{sudo} systemctl disable --now docker-registry.service",
    ]


@pytest.mark.parametrize(
    ("sudo", "run"),
    [
        (None, "Run as root: apt-get update && apt-get install -y docker-registry rsync"),
        ("password", "Run: sudo apt-get update && sudo apt-get install -y docker-registry rsync"),
    ],
)
def test_without_root_or_sudo_stops_with_one_line(tmp_path: Path, sudo: str | None, run: str) -> None:
    p, calls = _run(tmp_path, ("sshd", "ssh"), uid=1000, sudo=sudo)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "error: make test needs the system packages docker-registry rsync (tests/oci runs a registry, tests/remote "
        "an sshd and rsync); installing them needs root or sudo without a password. "
        f"{run}, then make test again"
    ]
    assert not [c for c in calls if "apt-get" in c or "systemctl" in c], calls


def test_make_test_runs_it_before_anything_else() -> None:
    """`make test` (and so `.ci/run`, which runs only `make test`) installs the packages first."""
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest: system-packages $(STAMP)\n" in makefile
    assert "\tbash scripts/system-packages.sh\n" in makefile
    ci = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert ci[-1] == "make test" and not [line for line in ci if "apt-get" in line]
