"""The README stays true: every `conv2d` and `pytest checks` command it shows names real commands and options."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import click
import pytest

from conv2d_bundle.cli import main
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _commands(prefix: str) -> list[list[str]]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith(prefix)]


def _options(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("-")]


CONV2D = _commands("conv2d ")


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
    assert len(CONV2D) >= 5


@pytest.mark.parametrize("words", CONV2D, ids=[" ".join(w[:3]) for w in CONV2D])
def test_conv2d_command_exists(words: list[str]) -> None:
    cmd: click.Command = main
    for word in words[1:]:
        if isinstance(cmd, click.Group) and word in cmd.commands:
            cmd = cmd.commands[word]
        elif not word.startswith("-"):
            break
    assert not isinstance(cmd, click.Group), f"{words}: no such subcommand"
    known = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    unknown = [o for o in _options(words) if o not in known]
    assert not unknown, f"{' '.join(words)}: unknown options {unknown}"


def test_pytest_check_options_exist() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    used = {o for words in _commands("pytest ") for o in _options(words)}
    assert used >= {"--bundle", "--target", "--artifacts"}
    missing = [o for o in sorted(used) if o not in help_text]
    assert not missing, f"README uses pytest options the plugin does not define: {missing}"


def test_parallel_workers_say_when_they_pay_off() -> None:
    """``verify -n 2`` on one bundle at the default budget is slower than serial: help and README say when it helps."""
    pack = main.commands["pack"]
    assert isinstance(pack, click.Group)
    workers = next(p for p in pack.commands["verify"].params if "-n" in getattr(p, "opts", []))
    help_text = " ".join(str(getattr(workers, "help", "")).split())
    assert "--profile thorough" in help_text and "slower" in help_text, help_text
    assert "When `-n` pays off" in README
