"""A verdict is about these bytes, checked by every check the target has.

Each test reproduces one way a broken bundle ("bad": the example with one bias of the ONNX export moved by
+0.5 and MANIFEST.json re-sealed; plain ``verify`` fails it on parity) was made to read PASSED: collection
settings that hide the parity checks (``PYTEST_ADDOPTS``, ``-o``, an ini file in the working directory or
inside the bundle), a report plugin blocked, reports copied or forged into ``validation/``, a user's check
module that skips at import under ``--strict-targets``, and a verify run from inside the bundle that leaves
``.pytest_cache`` behind. Each must end FAILED, INCOMPLETE, refused or "not verified", never PASSED.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import ROOT, checks_subprocess, conv2d, reseal

SHRINK = "python_functions=test_[!p]*"  # every check but test_parity*: the ones the bad bundle fails


def _break_parity(bundle: Path) -> None:
    path = bundle / "models" / "model.onnx"
    model = onnx.load(path)
    for init in model.graph.initializer:
        if init.name.endswith("to_latent.bias"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
            break
    else:  # pragma: no cover - the example model changed
        raise AssertionError("no to_latent.bias in the example's ONNX export")
    onnx.save(model, path)
    reseal(bundle)


@pytest.fixture
def bad(bundle_copy: Path) -> Path:
    _break_parity(bundle_copy)
    return bundle_copy


def _report(bundle: Path, target: str = "onnx") -> dict[str, Any]:
    return json.loads((bundle / "validation" / f"{target}_validation.json").read_text())


def _shown(bundle: Path) -> dict[str, Any]:
    p = conv2d("pack", "show", str(bundle), "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _verify(bundle: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return conv2d(
        "pack", "verify", str(bundle), "--target", "onnx", "--profile", "quick", *args, env=env, cwd=cwd
    )


# -- 1. collection settings cannot shrink the expected set ---------------------------------------------
def test_pytest_addopts_cannot_hide_the_failing_checks_from_verify(bad: Path) -> None:
    p = _verify(bad, env={**os.environ, "PYTEST_ADDOPTS": f"-o {SHRINK}"})
    assert p.returncode == 1, p.stdout + p.stderr
    assert "--target onnx: failed (3 errors)" in p.stdout and ": passed" not in p.stdout
    assert "test_targets.py::test_parity[onnx-behavioral_codes-1]" in p.stdout


def test_an_ini_file_in_the_working_directory_is_not_read_by_verify(bad: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    (cwd / "pytest.ini").write_text(
        f"[pytest]\n{SHRINK.replace('=', ' = ')}\naddopts = -p no:conv2d_bundle_report\n"
    )
    p = _verify(bad, cwd=cwd)
    assert p.returncode == 1 and "--target onnx: failed (3 errors)" in p.stdout, p.stdout + p.stderr


def test_a_shrinking_setting_makes_a_direct_run_incomplete_and_exit_1(bad: Path) -> None:
    p = checks_subprocess("--bundle", str(bad), "--target", "onnx", "--check-profile", "quick", "-o", SHRINK)
    assert p.returncode == 1, p.stdout[-2000:]
    report = _report(bad)
    assert report["verdict"] == "incomplete" and not report["passed"]
    (reason,) = report["reasons"]
    assert reason.startswith(
        "collection settings differ from pytest's defaults: python_functions = test_[!p]*"
    )
    assert "test_targets.py::test_parity[onnx-behavioral_codes-1]" in report["not_run"]
    assert _shown(bad)["validation"]["onnx"]["status"] == "incomplete"


def test_a_bundle_carrying_test_configuration_and_code_is_never_obeyed(bad: Path, tmp_path: Path) -> None:
    """The attack: pytest.ini (pythonpath = ., addopts = -p helper) and helper.py shipped inside the bundle,
    listed in its MANIFEST. conv2d pack verify, run from inside the bundle as on a device, must not import
    helper.py; the bundle fails for carrying them. Plain pytest run from inside is refused (pytest itself
    has read the file by the time any plugin runs: the README says to run it from elsewhere)."""
    ran = tmp_path / "helper-ran"
    (bad / "pytest.ini").write_text("[pytest]\npythonpath = .\naddopts = -p helper\n")
    (bad / "helper.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    reseal(bad)
    p = conv2d("pack", "verify", ".", "--target", "onnx", "--profile", "quick", cwd=bad)
    assert p.returncode == 1, p.stdout + p.stderr
    assert not ran.exists(), "conv2d pack verify ran code from the bundle"
    assert (
        "test_general.py::test_no_code_or_test_configuration: the bundle holds code or test configuration: "
        "helper.py, pytest.ini" in p.stdout
    )
    (bad / "pytest.ini").write_text(f"[pytest]\n{SHRINK.replace('=', ' = ')}\n")
    reseal(bad)
    shutil.rmtree(bad / "validation")
    d = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conv2d_bundle.checks", "--bundle", ".", "--target", "onnx"],
        capture_output=True, text=True, cwd=bad, timeout=300,
    )  # fmt: skip
    assert d.returncode == 4, d.stdout + d.stderr
    assert (
        f"pytest read its configuration from {bad / 'pytest.ini'}, inside the bundle under test" in d.stderr
    )
    assert not (bad / "validation").exists()


# -- 3. no stale pass ------------------------------------------------------------------------------------
def test_blocking_the_report_plugin_removes_the_old_report_and_refuses(
    bad: Path, example_bundle: Path
) -> None:
    shutil.copytree(example_bundle / "validation", bad / "validation")  # the good bundle's passing reports
    p = checks_subprocess("--bundle", str(bad), "--target", "onnx", "-p", "no:conv2d_bundle_report")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "-p no:conv2d_bundle_report" in p.stderr and "onnx_validation.json" in p.stderr
    assert not (bad / "validation" / "onnx_validation.json").exists()


def test_collect_only_leaves_a_copied_pass_that_show_calls_stale(bad: Path, example_bundle: Path) -> None:
    shutil.copytree(example_bundle / "validation", bad / "validation")
    p = checks_subprocess("--bundle", str(bad), "--target", "onnx", "--co")
    assert p.returncode == 0, p.stdout[-2000:]
    shown = _shown(bad)["validation"]["onnx"]
    assert shown["status"] == "unverified" and not shown["passed"]
    assert shown["result"].startswith("not verified: stale report: it is about content sha256:")


# -- 4. show believes no file it cannot bind to these bytes ----------------------------------------------
def test_show_binds_every_report_to_this_bundles_bytes(bad: Path, example_bundle: Path) -> None:
    from conv2d_bundle.bundle.store import Bundle

    reports = bad / "validation"
    reports.mkdir()
    good = json.loads((example_bundle / "validation" / "onnx_validation.json").read_text())
    digest = Bundle(bad).content_digest
    forged = {
        "general": {"target": "general", "passed": True},  # bare
        "onnx": {**good, "content_digest": digest, "exp_hash": "000000000000"},  # another experiment's
        "executorch": {**good, "target": "executorch", "content_digest": digest},  # a format it lacks
    }
    for target, report in forged.items():
        (reports / f"{target}_validation.json").write_text(json.dumps(report))
    (reports / "ios_validation.json").symlink_to(example_bundle / "validation" / "onnx_validation.json")
    shown = _shown(bad)
    assert shown["content_digest"] == digest
    results = {t: (v["status"], v["result"]) for t, v in shown["validation"].items()}
    lacking = results.pop("executorch")
    assert lacking[0] == "unverified" and lacking[1].startswith(
        "not verified: a pass for a format the bundle lacks: the bundle was built without executorch "
        "(built only when asked for: --formats onnx,"
    )
    assert results == {
        "general": ("unverified", "not verified: report schema None is not the current 3: verify again"),
        "ios": ("unverified", "not verified: the report is a symlink (not followed)"),
        "onnx": (
            "unverified",
            f"not verified: foreign report: it is for bundle '000000000000', not {bad.name}",
        ),
    }
    text = conv2d("pack", "show", str(bad)).stdout
    assert "passed" not in text.split("Validation", 1)[1]


def test_a_report_copied_from_the_good_bundle_is_stale(bad: Path, example_bundle: Path) -> None:
    shutil.copytree(example_bundle / "validation", bad / "validation")
    shown = _shown(bad)["validation"]
    assert {"general", "onnx"} <= set(shown) and {v["status"] for v in shown.values()} == {"unverified"}
    assert shown["onnx"]["source"] == "validation/onnx_validation.json"
    good = _shown(example_bundle)["validation"]
    assert good["onnx"]["status"] == "passed"  # the same files, about its own bytes: they count


# -- 6. --strict-targets fails a user's check module that skips at import ------------------------------
@pytest.mark.parametrize("name", ["test_mine.py", "test_onnx.py"])  # the second: the name of one of ours
def test_strict_targets_fails_a_users_module_skipped_at_import(
    bundle_copy: Path, tmp_path: Path, name: str
) -> None:
    mine = tmp_path / "extra" / name
    mine.parent.mkdir()
    mine.write_text(
        "import pytest\npytestmark = pytest.mark.conv2d_target('onnx')\n"
        "pytest.importorskip('conv2d_no_such_module')\ndef test_mine(): pass\n"
    )
    base = ("--bundle", str(bundle_copy), "--target", "onnx", "--check-profile", "quick", str(mine))
    p = checks_subprocess(*base, "--strict-targets")
    assert p.returncode == 1, p.stdout[-2000:]
    report = _report(bundle_copy)
    assert report["verdict"] == "failed"
    cid = name if name == "test_mine.py" else str(mine)
    assert report["errors"] == [
        f"{cid}: not verified (--strict-targets): module skipped: could not import "
        "'conv2d_no_such_module': No module named 'conv2d_no_such_module'"
    ]
    p = checks_subprocess(*base)
    assert p.returncode == 0, p.stdout[-2000:]
    assert [s["id"] for s in _report(bundle_copy)["skipped"]] == [cid]


# -- 7. verifying writes nothing into the bundle but validation/ --------------------------------------
def test_verify_from_inside_the_bundle_leaves_nothing_there_and_plain_pytest_is_refused(
    bundle_copy: Path,
) -> None:
    before = sorted(p.name for p in bundle_copy.iterdir())
    for _ in range(2):  # the second run must not find the first one's leftovers
        p = conv2d("pack", "verify", ".", "--target", "onnx", "--profile", "quick", cwd=bundle_copy)
        assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(p.name for p in bundle_copy.iterdir()) == sorted({*before, "validation"})
    report = _report(bundle_copy)
    assert report["verdict"] == "passed" and report["check_profile"] == "quick"
    assert report["content_digest"].startswith("sha256:") and report["strict_targets"] is False
    shutil.rmtree(bundle_copy / "validation")
    d = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conv2d_bundle.checks", "--bundle", ".", "--target", "onnx"],
        capture_output=True, text=True, cwd=bundle_copy, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert d.returncode == 4, d.stdout + d.stderr
    assert f"pytest was started inside the bundle under test ({bundle_copy})" in d.stderr
    assert sorted(p.name for p in bundle_copy.iterdir()) == before  # no cache, no report


def test_a_conftest_in_the_bundle_is_never_collected_by_verify(bad: Path, tmp_path: Path) -> None:
    """With --pyargs, pytest loads conftest.py from the directory it is started in: a bundle's own, when
    started inside it. conv2d pack verify starts pytest elsewhere and fails the bundle for carrying it."""
    ran = tmp_path / "conftest-ran"
    (bad / "conftest.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    reseal(bad)
    p = conv2d("pack", "verify", ".", "--target", "onnx", "--profile", "quick", cwd=bad)
    assert p.returncode == 1 and not ran.exists(), p.stdout + p.stderr
    assert "the bundle holds code or test configuration: conftest.py" in p.stdout
