"""`pytest checks --bundle B --target onnx`: a good bundle passes; every breakage fails, named; reports hold."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.conftest import ROOT, check_outcome, checks_subprocess, conv2d, reseal, run_one_check

pytest_plugins = ["pytester"]


def _ids_outcomes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["id"], c["outcome"]) for c in report["checks"]]


def test_good_bundle_passes_and_reports(bundle_copy: Path, run_checks: Any) -> None:
    rc, report, out = run_checks(bundle_copy, "onnx")
    assert rc == 0, out
    assert report is not None and report["passed"] is True and report["errors"] == []
    assert report["target"] == "onnx" and report["schema_version"] == 3
    assert report["verdict"] == "passed" and report["complete"] is True and report["reasons"] == []
    assert report["counts"]["expected"] == len(report["checks_run"]) and report["not_run"] == []
    assert "test_targets.py::test_parity[onnx-confidence-7]" in report["checks_run"]
    assert "test_general.py::test_manifest_verifies" in report["checks_run"]
    assert all(c["outcome"] == "passed" and c["duration_s"] >= 0 for c in report["checks"])
    assert {"python", "onnx", "onnxruntime", "numpy"} <= set(report["environment"]["versions"])
    parity = next(
        c for c in report["checks"] if c["id"] == "test_targets.py::test_parity[onnx-confidence-64]"
    )
    assert parity["details"]["max_abs_error"] < 1e-5 and "cosine_similarity" in parity["details"]
    figures = parity["details"]  # the figures are evidence on a passing item too
    assert figures["psnr_db"] > 80 and figures["agreement_kind"] == "top1" and figures["agreement"] == 1.0
    assert {"mean_abs_error", "mean_rel_error", "p99_rel_error", "snr_db"} <= set(figures)
    codes = next(
        c for c in report["checks"] if c["id"] == "test_targets.py::test_parity[onnx-behavioral_codes-7]"
    )
    assert codes["details"]["agreement_kind"] == "codes" and codes["details"]["agreement"] == 1.0
    general = json.loads((bundle_copy / "validation" / "general_validation.json").read_text())
    assert general["passed"] and all(i.startswith("test_general.py::") for i in general["checks_run"])


def test_same_results_with_xdist(bundle_copy: Path, run_checks: Any, tmp_path: Path) -> None:
    rc1, serial, _ = run_checks(bundle_copy, "onnx")
    junit = tmp_path / "junit.xml"
    rc2, parallel, out = run_checks(bundle_copy, "onnx", "-n", "2", "--junitxml", str(junit))
    assert rc1 == rc2 == 0, out
    assert _ids_outcomes(serial) == _ids_outcomes(parallel)
    assert parallel["verdict"] == "passed" and parallel["complete"] is True
    # the controller imports no runtime itself: the versions come from the workers that ran the checks
    versions = parallel["environment"]["versions"]
    assert versions == serial["environment"]["versions"] and {"numpy", "onnx", "onnxruntime"} <= set(versions)
    assert _junit_properties(junit)["conv2d.onnx.verdict"] == "passed"  # record_testsuite_property fails here
    details = {c["id"]: c.get("details") for c in parallel["checks"]}
    assert (
        details["test_targets.py::test_parity[onnx-behavioral_codes-64]"]["mismatches"] == 0
    )  # figures cross workers


def test_checks_run_without_torch(bundle_copy: Path, run_checks: Any, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    (hide / "torch").mkdir(parents=True)
    (hide / "torch" / "__init__.py").write_text("raise ImportError('torch is hidden in this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)])}
    rc, report, out = run_checks(bundle_copy, "onnx", env=env)
    assert rc == 0, out
    assert report["counts"]["skipped"] == 0 and report["counts"]["passed"] >= 40


def _flip_byte(b: Path) -> None:
    f = b / "models/model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def _edit_onnx(edit: Any) -> Any:
    def apply(b: Path) -> None:
        m = onnx.load(str(b / "models/model.onnx"))
        edit(m)
        onnx.save(m, str(b / "models/model.onnx"))
        reseal(b)

    return apply


def _short_input(m: Any) -> None:
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 50


def _dynamic_time_axis(m: Any) -> None:
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "time"


def _golden_row(b: Path) -> None:
    ref = dict(np.load(b / "reference/outputs.npz"))
    ref["behavioral_codes"][3] = (ref["behavioral_codes"][3] + 1) % 800
    np.savez(b / "reference/outputs.npz", **ref)
    reseal(b)


def _phantom_format(b: Path) -> None:
    meta = json.loads((b / "metadata.json").read_text())
    meta["formats"]["coreml"] = {"status": "built", "file": "models/coreml.mlpackage", "size_bytes": 10}
    shutil.rmtree(b / "models/coreml.mlpackage", ignore_errors=True)
    (b / "metadata.json").write_text(json.dumps(meta))
    reseal(b)


def _broken_config(b: Path) -> None:
    (b / "config.yaml").write_text("model: [unclosed\n")
    reseal(b)


def _golden_rows_dropped(b: Path) -> None:
    ref = {k: v[:32] for k, v in np.load(b / "reference/outputs.npz").items()}
    np.savez(b / "reference/outputs.npz", **ref)
    reseal(b)


BREAKAGES = {
    "flipped byte in model.onnx": (_flip_byte, "models/model.onnx"),
    "label_map.json deleted": (lambda b: (b / "label_map.json").unlink(), "label_map.json"),
    "extra file": (lambda b: (b / "models" / "notes.txt").write_text("added\n"), "notes.txt"),
    "input [N,9,2,50], resealed": (_edit_onnx(_short_input), "50"),
    "format listed but absent": (_phantom_format, "coreml"),
    "golden codes differ in one row": (_golden_row, "behavioral_codes"),
    "time axis made dynamic": (_edit_onnx(_dynamic_time_axis), "accepted invalid inputs"),
    "config.yaml unreadable": (_broken_config, "config"),
    "golden outputs with fewer rows": (_golden_rows_dropped, "shape"),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_breakage_fails_with_named_error(bundle_copy: Path, run_checks: Any, name: str) -> None:
    breakage, words = BREAKAGES[name]
    breakage(bundle_copy)
    rc, report, out = run_checks(bundle_copy, "onnx")
    assert rc == 1, f"{name}: exit {rc}\n{out[-2000:]}"
    assert report is not None and report["passed"] is False
    assert any(words in e for e in report["errors"]), report["errors"]


def _unknown_op(m: Any) -> None:
    """A node of an op domain no runtime knows: onnx parses the file, onnxruntime refuses to load it."""
    m.opset_import.append(helper.make_opsetid("com.example.unknown", 1))
    m.graph.node.append(helper.make_node("Mystery", ["imu_input"], ["mystery"], domain="com.example.unknown"))


SESSION_CHECKS = [
    *(
        f"test_targets.py::test_parity[onnx-{o}-{n}]"
        for o in ("behavioral_codes", "confidence")
        for n in (1, 7, 64)
    ),
    "test_onnx.py::test_fuzz_valid_inputs",
    "test_onnx.py::test_fuzz_invalid_inputs",
]


def test_model_onnxruntime_cannot_load_is_an_error_not_a_skip(bundle_copy: Path, run_checks: Any) -> None:
    """Every check on the onnxruntime session errors in setup, naming the file. Guards against the
    onnx_session fixture turning a load failure into a skip ("not verified"), which a report can pass."""
    _edit_onnx(_unknown_op)(bundle_copy)
    _, report, out = run_checks(bundle_copy, "onnx", "-k", "test_parity or test_fuzz")
    assert report is not None, out[-2000:]
    for check in SESSION_CHECKS:
        outcome, message = check_outcome(report, check)
        assert outcome == "error", check
        assert message.startswith("onnxruntime cannot load models/model.onnx: Fail: "), message
        assert "com.example.unknown:Mystery" in message
    assert report["skipped"] == [] and report["verdict"] == "failed" and report["passed"] is False


def _batch_mixing(m: Any) -> None:
    """confidence = (P + mean of P over the batch) / 2: rows stay in [0, 1] and sum to 1, but each row now
    depends on the other windows of the batch."""
    for node in m.graph.node:
        node.output[:] = ["confidence_alone" if n == "confidence" else n for n in node.output]
    m.graph.initializer.append(numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"))
    m.graph.node.extend(
        [
            helper.make_node("ReduceMean", ["confidence_alone"], ["batch_mean"], axes=[0], keepdims=1),
            helper.make_node("Add", ["confidence_alone", "batch_mean"], ["confidence_sum"]),
            helper.make_node("Mul", ["confidence_sum", "half"], ["confidence"]),
        ]
    )


def test_outputs_depending_on_other_rows_fail_fuzzing(bundle_copy: Path, run_checks: Any) -> None:
    """An export whose rows depend on the rest of the batch (valid ranges, wrong answers in batches). Guards
    against the fuzz check's batch-invariance assertion being disabled: its range checks all pass here."""
    _edit_onnx(_batch_mixing)(bundle_copy)
    outcome, message, _ = run_one_check(
        run_checks, bundle_copy, "onnx", "test_onnx.py::test_fuzz_valid_inputs"
    )
    assert outcome == "failed"
    assert re.match(r"confidence: row \d+ of a batch of \d+ differs from the same window alone \(", message)


def test_fuzz_failure_is_saved_and_replayed_first(bundle_copy: Path, run_checks: Any) -> None:
    """A planted fuzz failure leaves its shrunk input and the command that replays it; the next run replays it
    before drawing anything new, and says so."""
    _edit_onnx(_batch_mixing)(bundle_copy)
    outcome, message, _ = run_one_check(
        run_checks, bundle_copy, "onnx", "test_onnx.py::test_fuzz_valid_inputs"
    )
    assert outcome == "failed"
    saved = bundle_copy / "validation/counterexamples/test_onnx.py-test_fuzz_valid_inputs.json"
    assert "counterexample saved in validation/counterexamples/" in message, message
    data = json.loads(saved.read_text())
    [case] = data["cases"]
    assert data["check"] == "test_onnx.py::test_fuzz_valid_inputs"
    example = case["example"]
    assert set(example) == {"batch", "seed", "kind"} and example["batch"] >= 2  # a batch of 1 cannot mix rows
    assert case["replay"].startswith("pytest --pyargs conv2d_bundle.checks --bundle ")
    assert "--target onnx -k test_fuzz_valid_inputs" in case["replay"] and case["replay"] in message
    x = np.load(saved.parent / case["input"])
    assert x.shape == (example["batch"], 9, 2, 100) and x.dtype == np.float32

    # the next run (validation/ kept): the saved case is replayed first and fails at once
    p = checks_subprocess(
        "--bundle", str(bundle_copy), "--target", "onnx", "--check-profile", "quick", "-k", "test_fuzz_valid"
    )
    report = json.loads((bundle_copy / "validation/onnx_validation.json").read_text())
    check = next(c for c in report["checks"] if c["id"] == "test_onnx.py::test_fuzz_valid_inputs")
    assert p.returncode == 1 and check["outcome"] == "failed"
    assert f"(saved counterexample {example} in validation/counterexamples/" in check["message"]
    assert check["details"]["counterexamples_replayed"] == 1
    assert len(json.loads(saved.read_text())["cases"]) == 1  # the same case is not saved twice


def test_counterexamples_replay_on_a_good_export(bundle_copy: Path) -> None:
    """Saved cases that pass again (the export was fixed) are replayed and count as examples, nothing fails."""
    saved = bundle_copy / "validation/counterexamples/test_onnx.py-test_fuzz_valid_inputs.json"
    saved.parent.mkdir(parents=True)
    case = {"example": {"batch": 3, "seed": 7, "kind": "mixed"}, "message": "", "input": "", "replay": ""}
    saved.write_text(json.dumps({"schema_version": 1, "cases": [case]}))
    p = checks_subprocess(
        "--bundle", str(bundle_copy), "--target", "onnx", "--check-profile", "quick", "-k", "test_fuzz_valid"
    )
    report = json.loads((bundle_copy / "validation/onnx_validation.json").read_text())
    check = next(c for c in report["checks"] if c["id"] == "test_onnx.py::test_fuzz_valid_inputs")
    assert p.returncode == 0 and check["outcome"] == "passed", p.stdout[-2000:]
    assert check["details"]["counterexamples_replayed"] == 1


def _scale_weights_of(node_name: str) -> Any:
    """Scale the weight initializer of one node of the graph (one layer), as a broken conversion would."""

    def edit(m: Any) -> None:
        node = next(n for n in m.graph.node if n.name == node_name)
        init = next(i for i in m.graph.initializer if i.name == node.input[1])
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5), init.name))

    return edit


@pytest.mark.parametrize(
    ("node", "first_bad", "last_good"),
    [
        ("/inner/classifier/classifier.0/Gemm", "classifier", "to_latent"),
        ("/inner/to_latent/Gemm", "to_latent", "encoder"),
        ("/inner/encoder/encoder.1/encoder.1.0/Conv", "encoder", None),
    ],
)
def test_parity_failure_names_the_first_divergent_tap(
    bundle_copy: Path, run_checks: Any, node: str, first_bad: str, last_good: str | None
) -> None:
    """One layer's weights perturbed and re-sealed: parity fails and names that layer's tap (the built-in
    model's taps: encoder, to_latent, classifier) as the first divergence, and the last tap that agrees."""
    _edit_onnx(_scale_weights_of(node))(bundle_copy)
    _, report, out = run_checks(bundle_copy, "onnx", "-k", "test_parity")
    assert report is not None, out[-2000:]
    failed = [c for c in report["checks"] if c["outcome"] == "failed"]
    assert failed, out[-2000:]
    for check in failed:
        assert f"diverges at {first_bad} (max abs " in check["message"], check["message"]
        where = check["details"]["divergence"]
        assert where["first_divergent_tap"] == first_bad and where["last_agreeing_tap"] == last_good
        if last_good:
            assert re.search(rf"; agrees up to {last_good} \([0-9.e-]+\)$", check["message"])
        else:
            assert check["message"].endswith("; the first tap already disagrees")
        # the figures stay in every item: PSNR, top-1 / code agreement
        assert "psnr_db" in check["details"] and check["details"]["agreement_kind"] in ("top1", "codes")


def _dead_export(b: Path) -> None:
    """model.onnx replaced by a graph that ignores its input: the majority code (500, 95% of the golden windows)
    and one fixed probability row, with the real model's input and output names, types and shapes."""
    zero_f, zero_i = (
        numpy_helper.from_array(np.float32(0), "zero_f"),
        numpy_helper.from_array(np.int64(0), "zi"),
    )
    code = numpy_helper.from_array(np.int64(500), "code")
    row = numpy_helper.from_array(np.array([[0.7, 0.1, 0.1, 0.1]], np.float32), "row")
    nodes = [
        helper.make_node("ReduceMean", ["imu_input"], ["per_window"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["per_window", "zero_f"], ["zeros"]),
        helper.make_node("Cast", ["zeros"], ["zeros_i"], to=onnx.TensorProto.INT64),
        helper.make_node("Add", ["zeros_i", "code"], ["behavioral_codes"]),
        helper.make_node("Unsqueeze", ["zeros", "axis1"], ["zeros_col"]),
        helper.make_node("Add", ["zeros_col", "row"], ["confidence"]),
    ]
    axis1 = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    real = onnx.load(b / "models/model.onnx")
    graph = helper.make_graph(
        nodes, "dead", list(real.graph.input), list(real.graph.output), [zero_f, zero_i, code, row, axis1]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = real.ir_version
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, b / "models/model.onnx")
    reseal(b)


def test_a_dead_export_answering_the_majority_fails_every_parity_item(
    bundle_copy: Path, run_checks: Any
) -> None:
    """An export that answers the golden set's majority code on every window agrees with 95% of its codes: it
    fails, and the failure says it is no better than that constant answer."""
    _dead_export(bundle_copy)
    rc, report, out = run_checks(bundle_copy, "onnx", "-k", "test_parity")
    assert rc == 1 and report is not None, out[-2000:]
    items = [c for c in report["checks"] if c["id"].startswith("test_targets.py::test_parity[onnx-")]
    outcomes = {c["id"].split("[onnx-")[1].rstrip("]"): c["outcome"] for c in items}
    # the example's first 7 golden windows all have the majority code (its random golden windows reach 2 codes:
    # the reason for export.reference.inputs): those items cannot tell; every item over all 64 windows fails
    assert outcomes == {
        **{f"behavioral_codes-{n}": "passed" for n in (1, 7)},
        "behavioral_codes-64": "failed",
        **{f"confidence-{n}": "failed" for n in (1, 7, 64)},
    }, _brief(items)
    codes = next(c for c in items if c["id"] == "test_targets.py::test_parity[onnx-behavioral_codes-64]")
    details = codes["details"]
    assert details["agreement"] == details["constant_agreement"] and details["constant_answer"] == 500, (
        details
    )
    assert "code agreement 95.3% is no better than answering the constant code 500 (95.3%" in codes["message"]
    # the taps are not in the dead graph: the divergence is not located, and the message says so plainly
    assert "no tap of the source model maps to a tensor of this export" in codes["message"], codes["message"]


def _brief(items: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(c["id"], c["outcome"], c["message"][:160]) for c in items]


def test_taps_recorded_at_create(example_bundle: Path) -> None:
    """reference/taps.json lists the built-in model's top-level children that forward calls, in order (not
    fsq: only its methods are used); each maps to an ONNX tensor holding its value."""
    index = json.loads((example_bundle / "reference/taps.json").read_text())
    assert [t["name"] for t in index["taps"]] == ["encoder", "to_latent", "classifier"]
    values = np.load(example_bundle / "reference/taps.npz")
    assert values["encoder"].shape == (64, 192) and values["classifier"].shape == (64, 4)
    meta = json.loads((example_bundle / "metadata.json").read_text())
    mapping = meta["formats"]["onnx"]["taps"]
    assert mapping["classifier"].startswith("/inner/classifier/") and set(mapping) == set(values.files)
    manifest = json.loads((example_bundle / "MANIFEST.json").read_text())["files"]
    assert {"reference/taps.json", "reference/taps.npz"} <= set(manifest)


def test_parity_failure_without_taps_still_fails_with_its_figures(bundle_copy: Path, run_checks: Any) -> None:
    """A bundle without taps (made before them): the failure says the divergence was not located, and why."""
    _edit_onnx(_scale_weights_of("/inner/classifier/classifier.0/Gemm"))(bundle_copy)
    (bundle_copy / "reference/taps.json").unlink()
    reseal(bundle_copy)
    outcome, message, _ = run_one_check(
        run_checks, bundle_copy, "onnx", "test_targets.py::test_parity[onnx-confidence-7]"
    )
    assert outcome == "failed" and "PSNR" in message
    assert "(divergence not located: the bundle has no " in message and "taps.json" in message


def _tamper_test_data(b: Path) -> None:
    path = b / "reference/onnx/test_data_set_0/output_1.pb"
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    arr = numpy_helper.to_array(tensor).copy()
    arr[0, 0] += np.float32(0.25)
    path.write_bytes(numpy_helper.from_array(arr, tensor.name).SerializeToString())
    reseal(b)


def test_onnx_test_data_agrees_with_the_golden_files(
    example_bundle: Path, bundle_copy: Path, run_checks: Any
) -> None:
    d = example_bundle / "reference/onnx/test_data_set_0"
    assert sorted(p.name for p in d.iterdir()) == ["input_0.pb", "output_0.pb", "output_1.pb"]
    tensor = onnx.TensorProto()
    tensor.ParseFromString((d / "output_0.pb").read_bytes())
    assert tensor.name == "behavioral_codes"
    golden = np.load(example_bundle / "reference/outputs.npz")["behavioral_codes"]
    assert np.array_equal(numpy_helper.to_array(tensor), golden)

    _tamper_test_data(bundle_copy)
    outcome, message, _ = run_one_check(
        run_checks, bundle_copy, "onnx", "test_general.py::test_onnx_test_data"
    )
    assert outcome == "failed"
    assert message == (
        "reference/onnx/test_data_set_0/output_1.pb: float32 [64, 4] differs from outputs.npz confidence"
    )


def test_unknown_target_is_a_usage_error(example_bundle: Path) -> None:
    p = checks_subprocess("--bundle", str(example_bundle), "--target", "android")
    assert p.returncode == 4 and "onnx" in p.stderr and "hailo" in p.stderr


def test_missing_bundle_is_a_usage_error(tmp_path: Path) -> None:
    p = checks_subprocess("--artifacts", str(tmp_path), "--bundle", "abcd")
    assert p.returncode == 4 and "no bundle" in (p.stdout + p.stderr)
    p = checks_subprocess()
    assert p.returncode == 4 and "--bundle" in (p.stdout + p.stderr)


def test_bundle_by_hash_prefix(example_bundle: Path, tmp_path: Path) -> None:
    shutil.copytree(example_bundle, tmp_path / example_bundle.name)
    p = checks_subprocess(
        "--artifacts", str(tmp_path), "--bundle", example_bundle.name[:6], "--check-profile", "quick"
    )
    assert p.returncode == 0, p.stdout[-1000:]
    assert (tmp_path / example_bundle.name / "validation" / "general_validation.json").exists()


SKIPPING_CHECK = """
import warnings
import pytest
from conv2d_bundle.errors import BundleWarning

pytestmark = pytest.mark.conv2d_target("onnx")

@pytest.fixture
def skips_in_setup():
    pytest.skip("fixture cannot run here")

@pytest.fixture
def skips_in_teardown():
    yield
    pytest.skip("could not clean up here")

def test_needs_device():
    pytest.skip("needs the device")

def test_setup_skip(skips_in_setup):
    pass

def test_teardown_skip(skips_in_teardown):
    pass

def test_warns():
    warnings.warn(BundleWarning("model is large"))

@pytest.mark.conv2d_target("hailo")
def test_other_target():
    raise AssertionError("deselected, never run")
"""


def test_skips_warnings_deselection_and_strict(pytester: pytest.Pytester, bundle_copy: Path) -> None:
    """Custom checks beside the package's: skips are not verified, warnings land in the report, another
    target's checks are deselected; with --strict-targets a skip fails, in the call and in setup alike."""
    pytester.makepyfile(test_custom=SKIPPING_CHECK)
    args = [str(ROOT / "checks"), str(pytester.path), "--bundle", str(bundle_copy), "--target", "onnx"]
    args += ["-p", "no:cacheprovider"]
    result = pytester.runpytest(*args, "--check-profile", "quick")
    result.assert_outcomes(passed=46, skipped=3, deselected=3)
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["passed"] is True and report["verdict"] == "passed" and report["complete"] is True
    assert report["skipped"] == [
        {"id": "test_custom.py::test_needs_device", "reason": "needs the device"},
        {"id": "test_custom.py::test_setup_skip", "reason": "fixture cannot run here"},
        {"id": "test_custom.py::test_teardown_skip", "reason": "could not clean up here"},
    ]
    assert "test_custom.py::test_needs_device" not in report["checks_run"]
    # the example's golden set is degenerate (one FSQ code on 61 of 64 windows): every report says so first
    assert report["warnings"][0].startswith("golden set coverage is degenerate")
    assert report["warnings"][1:] == ["test_custom.py::test_warns: model is large"]

    strict = pytester.runpytest(*args, "--check-profile", "quick", "--strict-targets")
    assert strict.ret == 1
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["passed"] is False and report["verdict"] == "failed"
    outcomes = {c["id"]: (c["outcome"], c["message"]) for c in report["checks"]}
    assert outcomes["test_custom.py::test_needs_device"] == (
        "failed",
        "not verified (--strict-targets): needs the device",
    )
    assert outcomes["test_custom.py::test_setup_skip"] == (
        "error",
        "not verified (--strict-targets): fixture cannot run here",
    )
    assert outcomes["test_custom.py::test_teardown_skip"] == (
        "error",
        "not verified (--strict-targets): could not clean up here",
    )


def test_custom_checks_alone_do_not_verify_a_target(pytester: pytest.Pytester, bundle_copy: Path) -> None:
    """A run of one's own checks without the package's is not a verification of the target."""
    pytester.makepyfile(test_custom=SKIPPING_CHECK)
    result = pytester.runpytest("--bundle", str(bundle_copy), "--target", "onnx", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=3, deselected=1)
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["verdict"] == "incomplete" and report["passed"] is False
    assert report["reasons"] == [
        f"{report['counts']['expected']} of {report['counts']['expected']} checks did not run"
    ]


def test_validator_api_and_verify_cli(bundle_copy: Path, tmp_path: Path) -> None:
    from conv2d_bundle.bundle.store import Bundle
    from conv2d_bundle.verify.runner import BundleValidator

    result = BundleValidator(profile="quick").validate_for_target(Bundle(bundle_copy), "onnx")
    assert result.passed and result.target == "onnx" and len(result.checks_run) >= 40 and not result.errors

    junit = tmp_path / "junit.xml"
    p = conv2d(
        "pack",
        "verify",
        bundle_copy.name[:5],
        "--output-dir",
        str(bundle_copy.parent),
        "--target",
        "onnx",
        "--junitxml",
        str(junit),
        "--profile",
        "quick",
    )
    assert p.returncode == 0, p.stderr
    assert "--target onnx: passed\n" in p.stdout and "onnx_validation.json" in p.stdout
    properties = _junit_properties(junit)
    assert properties["conv2d.exp_hash"] == bundle_copy.name
    assert properties["conv2d.onnx.verdict"] == "passed" and properties["conv2d.onnx.complete"] == "true"
    assert properties["conv2d.general.verdict"] == "passed" and "conv2d.version.onnxruntime" in properties

    (bundle_copy / "label_map.json").unlink()
    p = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "--profile", "quick")
    assert p.returncode == 1 and "FAILED" in p.stdout and "label_map.json" in p.stdout
    p = conv2d("pack", "verify", "ffff", "--output-dir", str(tmp_path))
    assert p.returncode == 2 and "no bundle" in p.stderr


def _junit_properties(path: Path) -> dict[str, str]:
    """The ``<testsuite>`` properties of a JUnit file (xunit2 places them on the testsuite element)."""
    import xml.etree.ElementTree as ET

    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


def test_root_conftest_registers_plugin_once(example_bundle: Path, tmp_path: Path) -> None:
    """With autoload off the root conftest registers the plugin; with it on, it must not register it twice."""
    shutil.copytree(example_bundle, tmp_path / example_bundle.name)
    for autoload_off in ("1", ""):
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": autoload_off}
        p = checks_subprocess("--bundle", str(tmp_path / example_bundle.name), env=env)
        assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]


def test_verify_with_plugin_autoload_off(bundle_copy: Path) -> None:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    p = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "-k", "test_parity", env=env)
    assert p.returncode == 1, p.stderr  # a selection verifies only some checks: not a pass
    assert "--target onnx: incomplete: selected: -k test_parity (" in p.stdout and "0 failed" in p.stdout
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["partial"] is True and report["selection"] == "-k test_parity"
    assert report["verdict"] == "incomplete" and report["reasons"][0].startswith("selected: -k test_parity (")


def test_check_profile_offers_only_the_documented_budgets(bundle_copy: Path) -> None:
    """``seal`` is create's own budget at seal time: accepted, not offered."""
    import re
    import subprocess
    import sys

    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    ).stdout  # fmt: skip
    option = re.search(r"--conv2d-check-profile=.*?(?=\n  --)", help_text, flags=re.S)
    assert option is not None, help_text
    assert "quick" in option[0] and "thorough" in option[0] and "seal" not in option[0]
    bad = checks_subprocess("--bundle", str(bundle_copy), "--check-profile", "bogus", "--co")
    assert bad.returncode == 4 and "quick, default, thorough" in bad.stderr and "seal" not in bad.stderr
    seal = checks_subprocess("--bundle", str(bundle_copy), "--check-profile", "seal", "--co")
    assert seal.returncode == 0, seal.stdout + seal.stderr
    assert not (bundle_copy / "validation").exists()  # collecting verifies nothing: no report written
