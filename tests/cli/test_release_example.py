"""examples/ci/release.yml stays true: it is a workflow, and every `conv2d pack` line names real options."""

from __future__ import annotations

import re
import shlex

import click
import yaml

from conv2d_bundle.cli import main
from tests.conftest import ROOT

WORKFLOW = ROOT / "examples" / "ci" / "release.yml"


def _conv2d_lines() -> list[list[str]]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["release"]["steps"]
    script = "\n".join(step.get("run", "") for step in steps).replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        for part in re.split(r"\||&&|>", line):
            words = shlex.split(part.strip(), posix=True) if part.strip() else []
            if words[:2] == ["conv2d", "pack"]:
                commands.append(words)
    return commands


def test_the_release_workflow_creates_verifies_pushes_and_attests() -> None:
    commands = _conv2d_lines()
    assert [c[2] for c in commands] == ["create", "verify", "push", "verify", "show"]
    assert "--attest" in commands[3] and "--key" in commands[3]
    group = main.commands["pack"]
    assert isinstance(group, click.Group)
    for words in commands:
        cmd = group.commands[words[2]]
        known = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
        unknown = [w for w in words if w.startswith("--") and w not in known]
        assert not unknown, f"{words[:3]}: unknown options {unknown}"
