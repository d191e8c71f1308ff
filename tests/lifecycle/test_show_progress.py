"""show, list --verbose/--json, and the progress/table display (rich on a terminal, plain text otherwise)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from click.testing import CliRunner

from conv2d_bundle import cli
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.cli.progress import StepDisplay, print_table
from conv2d_bundle.lifecycle import retention as lifecycle
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, reseal
from tests.lifecycle.conftest import MakeVariant


def _bound(bundle: Path, target: str) -> dict[str, object]:
    """What binds a report to this bundle's bytes: schema, target, experiment, content digest."""
    from conv2d_bundle.verify.verdict import REPORT_SCHEMA_VERSION

    b = Bundle(bundle)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "target": target,
        "exp_hash": b.exp_hash,
        "content_digest": b.content_digest,
    }


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli.main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_show_json_and_text(variant: MakeVariant) -> None:
    b = variant("abcabcabcabc", metrics={"accuracy": 0.75})
    art = b.parent
    meta = json.loads((b / "metadata.json").read_text())  # as create wrote it before reports were bound
    meta["validation"] = {"general": {"passed": True, "errors": 0, "warnings": 0, "not_verified": 0}}
    (b / "metadata.json").write_text(json.dumps(meta))
    reseal(b)
    (b / "validation").mkdir()
    report = {
        **_bound(b, "onnx"),
        "passed": False,
        "errors": ["x: broken"],
        "warnings": [],
        "skipped": [],
        "finished_at": "2026-02-03T04:05:06Z",
    }
    (b / "validation" / "onnx_validation.json").write_text(json.dumps(report))
    lifecycle.pin(art, "abcabc")
    code, out, err = invoke("pack", "show", "abcabc", "--output-dir", str(art), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["exp_hash"] == "abcabcabcabc" and info["pinned"] is True
    assert info["metrics"]["accuracy"] == 0.75
    assert info["formats"]["onnx"]["status"] == "built"
    assert info["formats"]["onnx"]["size_bytes"] == (b / "models" / "model.onnx").stat().st_size
    assert info["validation"]["onnx"] == {
        "status": "failed",
        "passed": False,
        "result": "failed (1 error)",
        "errors": 1,
        "warnings": 0,
        "skipped": 0,
        "reasons": [],
        "finished_at": "2026-02-03T04:05:06Z",
        "host": None,
        "content_digest": info["content_digest"],
        "source": "validation/onnx_validation.json",
    }
    assert info["content_digest"] == Bundle(b).content_digest
    general = info["validation"]["general"]  # create's summary in metadata.json: the bundle's own claim
    assert general["source"] == "metadata.json (the bundle's own claim)" and general["status"] == "unverified"
    assert general["result"] == "not verified: seal-time claim in metadata.json (passed), not a report"
    assert info["provenance"]["created_by"] == "test@host" and len(info["provenance"]["commit_sha"]) >= 7

    code, out, _ = invoke("pack", "show", "abcabc", "--output-dir", str(art))
    assert code == 0
    assert "(pinned)" in out and "Created: 2026-01-01T00:00:00.000000Z by test@host" in out
    assert re.search(r"\nonnx +failed \(1 error\) +1 ", out) and "2026-02-03T04:05:06Z" in out
    assert re.search(
        r"\ngeneral +not verified: seal-time claim in metadata.json \(passed\), not a report .* "
        r"\(seal-time claim\)",
        out,
    )
    assert "accuracy    0.75" in out


def test_show_tells_passed_not_verified_and_incomplete_apart(variant: MakeVariant) -> None:
    """Before the verdict rules, show printed `ios passed 0 0` for six parity checks not verified, and took a
    -k run's report for nothing (keeping a stale one)."""
    b = variant("abcabcabcab1")
    (b / "validation").mkdir()
    base = {"errors": [], "warnings": [], "finished_at": "2026-02-03T04:05:06Z"}
    env = {"environment": {"host": "edge-01"}}
    reports = {
        "ios": {
            **base,
            **_bound(b, "ios"),
            **env,
            "verdict": "passed",
            "complete": True,
            "reasons": [],
            "skipped": [{"id": "p"}] * 6,
        },
        "onnx": {
            **base,
            **_bound(b, "onnx"),
            "verdict": "incomplete",
            "complete": False,
            "reasons": ["interrupted"],
            "skipped": [],
        },
        "hailo": {
            **base,
            **_bound(b, "hailo"),
            "verdict": "passed",
            "complete": True,
            "reasons": [],
            "skipped": [],
        },
    }
    for target, report in reports.items():
        (b / "validation" / f"{target}_validation.json").write_text(json.dumps(report))
    code, out, err = invoke("pack", "show", str(b), "--json")
    assert code == 0, err
    shown = json.loads(out)["validation"]
    assert shown["ios"]["result"] == "not verified (6 skipped)" and shown["ios"]["host"] == "edge-01"
    assert shown["onnx"]["status"] == "incomplete" and shown["onnx"]["result"] == "incomplete: interrupted"
    assert shown["hailo"]["result"] == "passed"
    code, out, _ = invoke("pack", "show", str(b))
    assert "not verified (6 skipped)" in out and "incomplete: interrupted" in out and "edge-01" in out


def test_list_verbose_and_json_newest_first(variant: MakeVariant) -> None:
    variant("aaaaaaaaaaa1", created_at="2026-01-01T00:00:00.000000Z")
    art = variant("aaaaaaaaaaa2", created_at="2026-01-02T00:00:00.000000Z").parent
    code, out, _ = invoke("pack", "list", "--output-dir", str(art), "--json")
    rows = json.loads(out)
    assert code == 0 and [r["exp_hash"] for r in rows] == ["aaaaaaaaaaa2", "aaaaaaaaaaa1"]
    code, out, _ = invoke("pack", "list", "--output-dir", str(art), "--verbose")
    assert code == 0 and out.index("aaaaaaaaaaa2") < out.index("aaaaaaaaaaa1")
    assert "Created: 2026-01-02T00:00:00.000000Z" in out and "Formats: " in out


def test_print_table_plain_and_terminal() -> None:
    plain = io.StringIO()
    print_table(["a", "long name"], [["x", None], ["yyy", 2]], title="T", stream=plain, force_terminal=False)
    assert plain.getvalue() == "T\na    long name\nx    -\nyyy  2\n"
    tty = io.StringIO()
    print_table(["a", "long name"], [["x", None], ["yyy", 2]], title="T", stream=tty, force_terminal=True)
    assert "\x1b[" in tty.getvalue() and "┃" in tty.getvalue() and "yyy" in tty.getvalue()


def test_step_display_plain_lines_and_terminal_spinner() -> None:
    plain = io.StringIO()
    with StepDisplay(stream=plain, force_terminal=False) as progress:
        progress("exporting onnx")
        progress("exporting coreml")
    assert plain.getvalue() == "  exporting onnx ...\n  exporting coreml ...\n"
    tty = io.StringIO()
    with StepDisplay(stream=tty, force_terminal=True) as progress:
        progress("exporting onnx")
        progress("exporting coreml")
    text = tty.getvalue()
    assert "✓" in text and "exporting onnx" in text and "exporting coreml" in text
    quiet = io.StringIO()
    with StepDisplay(enabled=False, stream=quiet) as progress:
        progress("nothing")
    assert quiet.getvalue() == ""
    for terminal in (False, True):  # create --json: progress only for a person watching stderr
        stream = io.StringIO()
        with StepDisplay(only_on_terminal=True, stream=stream, force_terminal=terminal) as progress:
            progress("exporting onnx")
        assert ("exporting onnx" in stream.getvalue()) is terminal


def test_create_json_stays_one_object_with_progress_on_stderr(example_bundle: Path) -> None:
    code, out, err = invoke(
        "pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL), "--name", "dogs_v1",
        "--output-dir", str(example_bundle.parent), "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["exp_hash"] == example_bundle.name and info["already_existed"] is True


def _run_with_stderr_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """The CLI with stdout on a pipe (as under ``| jq``) and stderr on a pseudo-terminal: (code, stdout, tty)."""
    import os
    import pty
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "conv2d_bundle.cli", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=ROOT,
        env={**env, "TERM": "xterm"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=600), out, b"".join(chunks).decode(errors="replace")


def test_create_json_shows_progress_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    from tests.conftest import create_args

    code, out, tty = _run_with_stderr_on_a_terminal(create_args(tmp_path / "out", "--json"))
    assert code == 0, tty
    assert json.loads(out)["already_existed"] is False  # stdout: exactly one JSON object
    assert "exporting onnx" in tty and "running the bundle's checks" in tty


def test_show_lists_targets_not_the_all_report(variant: MakeVariant) -> None:
    """A --target all run writes all_validation.json beside each target's own report: not a target."""
    b = variant("abcabcabcab2")
    (b / "validation").mkdir()
    for target in ("all", "onnx"):
        report = {**_bound(b, target), "verdict": "passed", "complete": True, "errors": [], "skipped": []}
        (b / "validation" / f"{target}_validation.json").write_text(json.dumps(report))
    code, out, err = invoke("pack", "show", str(b), "--json")
    assert code == 0, err
    assert list(json.loads(out)["validation"]) == ["onnx"]


def test_show_does_not_count_a_report_once_a_file_changed_size(variant: MakeVariant) -> None:
    b = variant("abcabcabcab3")
    (b / "validation").mkdir()
    report = {**_bound(b, "onnx"), "verdict": "passed", "complete": True, "errors": [], "skipped": []}
    (b / "validation" / "onnx_validation.json").write_text(json.dumps(report))
    assert json.loads(invoke("pack", "show", str(b), "--json")[1])["validation"]["onnx"]["status"] == "passed"
    with open(
        b / "models" / "model.onnx", "ab"
    ) as f:  # changed after the report, MANIFEST.json not re-sealed
        f.write(b"\0")
    shown = json.loads(invoke("pack", "show", str(b), "--json")[1])["validation"]["onnx"]
    assert shown["status"] == "unverified"
    assert (
        shown["result"] == "not verified: files differ from MANIFEST.json (models/model.onnx): verify again"
    )
