"""compare: metric deltas with direction, config differences, formats, sizes, validation, gates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conv2d_bundle import cli
from conv2d_bundle.errors import BundleError
from conv2d_bundle.lifecycle.compare import check_gates, compare_bundles, flatten, parse_gate, render_markdown
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL
from tests.lifecycle.conftest import MakeVariant

BASE, CAND = "aaaaaaaaaaaa", "bbbbbbbbbbbb"


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli.main, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def pair(variant: MakeVariant) -> Path:
    variant(BASE, metrics={"accuracy": 0.70, "ece": 0.05, "loss": 0.9, "custom": 3}, exp_name="dogs_v1")
    cand = variant(
        CAND,
        metrics={"accuracy": 0.80, "ece": 0.07, "loss": 0.9, "custom": 4},
        config={"training.epochs": 123, "export.onnx.note": "new"},
        exp_name="dogs_v2",
    )
    return cand.parent


def test_compare_markdown_snapshot(pair: Path, snapshot: object) -> None:
    code, out, err = invoke("pack", "compare", BASE, CAND, "--output-dir", str(pair))
    assert code == 0, err
    assert "| accuracy | 0.7000 | 0.8000 | +0.1000 | better |" in out
    assert "| ece | 0.0500 | 0.0700 | +0.0200 | worse |" in out
    assert str(pair) not in out
    # metadata.json records tool versions, so the total size moves with them; every other line is stable
    stable = re.sub(r"\| total \|.*\|\n", "| total | (varies) |\n", out)
    assert stable == snapshot


def test_compare_bundles_dict(pair: Path) -> None:
    c = compare_bundles(BASE, CAND, pair)
    assert c["bundles"] == {
        "bundle1": {"hash": BASE, "name": "dogs_v1"},
        "bundle2": {"hash": CAND, "name": "dogs_v2"},
    }
    acc = c["metrics"]["accuracy"]
    assert acc["bundle1"] == 0.70 and acc["bundle2"] == 0.80 and acc["improvement"] is True
    assert acc["delta"] == pytest.approx(0.10)
    assert c["metrics"]["ece"]["improvement"] is False  # lower is better
    assert c["metrics"]["loss"]["delta"] == 0
    assert c["metrics"]["custom"]["improvement"] is None and c["metrics"]["custom"]["direction"] is None
    assert c["metrics"]["perplexity"]["direction"] == "higher"
    assert c["config"]["training.epochs"]["bundle2"] == 123
    assert c["config"]["export.onnx.note"] == {"bundle1": None, "bundle2": "new"}
    assert set(c["config"]) == {"training.epochs", "export.onnx.note"}  # the variants edit metrics.json only
    assert c["formats"]["bundle1_only"] == [] and "onnx" in c["formats"]["common"]
    assert c["sizes"]["onnx"]["delta"] == 0 and c["sizes"]["total"]["bundle1"] > 0
    assert c["validation"] == {}  # the variants carry no reports (and create writes no claim into metadata)


def test_compare_json_output_file_and_gates(pair: Path, tmp_path: Path) -> None:
    art = str(pair)
    code, out, _ = invoke("pack", "compare", BASE, CAND, "--output-dir", art, "--json")
    assert code == 0 and json.loads(out)["metrics"]["accuracy"]["improvement"] is True
    report = tmp_path / "comparison.md"
    code, out, _ = invoke("pack", "compare", BASE, CAND, "--output-dir", art, "--output", str(report))
    assert code == 0 and "| accuracy |" in report.read_text()

    code, _, err = invoke(
        "pack", "compare", BASE, CAND, "--output-dir", art, "--fail-if-worse", "accuracy:0.01"
    )
    assert code == 0, err
    code, _, err = invoke("pack", "compare", BASE, CAND, "--output-dir", art, "--fail-if-worse", "ece:0.01")
    assert code == 1 and "ece went from 0.05 to 0.07" in err
    code, _, err = invoke("pack", "compare", BASE, CAND, "--output-dir", art, "--fail-if-worse", "ece:0.05")
    assert code == 0
    # reversed: the candidate lost 0.1 accuracy
    code, _, err = invoke(
        "pack", "compare", CAND, BASE, "--output-dir", art, "--fail-if-worse", "accuracy:0.01"
    )
    assert code == 1 and "accuracy" in err
    code, _, err = invoke("pack", "compare", BASE, CAND, "--output-dir", art, "--fail-if-worse", "custom:0")
    assert code == 2 and "unknown whether higher or lower" in err
    code, _, err = invoke("pack", "compare", BASE, CAND, "--output-dir", art, "--fail-if-worse", "accuracy")
    assert code == 2 and "METRIC:THRESHOLD" in err


def test_gates_negative_threshold_demands_an_improvement() -> None:
    c = {"metrics": {"ece": {"bundle1": 0.05, "bundle2": 0.047, "delta": -0.003, "direction": "lower"}}}
    assert check_gates(c, [parse_gate("ece:-0.002")]) == []
    assert check_gates(c, [parse_gate("ece:-0.005")])  # improved by 0.003, less than the 0.005 asked
    with pytest.raises(BundleError):
        check_gates(c, [("accuracy", 0.0)])


def test_flatten_and_markdown_without_common_metrics() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}
    md = render_markdown(
        {
            "bundles": {"bundle1": {"hash": "x", "name": "n|1"}, "bundle2": {"hash": "y", "name": "n2"}},
            "metrics": {},
            "config": {},
            "formats": {"bundle1_only": ["hailo"], "bundle2_only": [], "common": []},
            "sizes": {},
            "validation": {},
        }
    )
    assert "No metric in common." in md and "n\\|1" in md and "only in bundle 1: hailo" in md


def test_compare_two_real_bundles_with_different_metrics(example_bundle: Path) -> None:
    """The issue's case: two bundles built from the example with different metrics (one real create)."""
    from conv2d_bundle.lifecycle.create import ArtifactBundler

    art = example_bundle.parent.parent / "compare-real"
    other = ArtifactBundler(art).create_bundle(
        EXAMPLE_CONFIG, EXAMPLE_MODEL, exp_name="dogs_v2", metrics={"accuracy": 0.9, "ece": 0.01}
    )
    assert other.exp_hash != example_bundle.name
    code, out, err = invoke(
        "pack", "compare", str(example_bundle), str(other.bundle_dir), "--output-dir", str(art)
    )
    assert code == 0, err
    c = compare_bundles(str(example_bundle), str(other.bundle_dir), art)
    base_acc = c["metrics"]["accuracy"]["bundle1"]
    assert f"| accuracy | {base_acc:.4f} | 0.9000 | {0.9 - base_acc:+.4f} | worse |" in out
    assert c["config"]["metrics.accuracy"] == {"bundle1": base_acc, "bundle2": 0.9}
    assert c["sizes"]["onnx"]["delta"] == 0  # same weights: same ONNX bytes


def test_compare_shows_each_sides_verdict_in_shows_words(pair: Path, example_bundle: Path) -> None:
    """A report counts for the side whose bytes it is about; one copied from elsewhere is not a pass."""
    from conv2d_bundle.bundle.store import Bundle

    good = json.loads((example_bundle / "validation" / "onnx_validation.json").read_text())
    for name in (BASE, CAND):
        (pair / name / "validation").mkdir()
    bound = {**good, "exp_hash": BASE, "content_digest": Bundle(pair / BASE).content_digest}
    (pair / BASE / "validation" / "onnx_validation.json").write_text(json.dumps(bound))
    (pair / CAND / "validation" / "onnx_validation.json").write_text(json.dumps(good))  # copied
    row = compare_bundles(BASE, CAND, pair)["validation"]["onnx"]
    assert row["bundle1"] == "passed"
    assert row["bundle2"].startswith("not verified: foreign report: it is for bundle '")
    md = render_markdown(compare_bundles(BASE, CAND, pair))
    assert "| onnx | passed | not verified: foreign report" in md
