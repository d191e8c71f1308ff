"""Config validation: every problem reported at once, normalized form stable, hostile YAML refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conv2d_bundle.bundle.digest import experiment_hash
from conv2d_bundle.config import MAX_CONFIG_BYTES, load_config, parse_config, parse_formats
from conv2d_bundle.errors import ConfigError
from tests.conftest import EXAMPLE_CONFIG


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())


def test_example_config_is_valid_and_normalized() -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.model.input_shape == (1, 9, 2, 100)
    assert cfg.model.output_names == ("behavioral_codes", "confidence")
    assert cfg.model.output("behavioral_codes").num_codes == 800
    assert cfg.labels == ("rest", "walk", "trot", "play")
    assert cfg.onnx_opset == 13


def test_normalization_is_idempotent_and_hash_stable() -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    again = parse_config(yaml.safe_load(yaml.safe_dump(dict(cfg.data))))
    assert again.data == cfg.data
    assert experiment_hash(again.data, "0" * 64) == experiment_hash(cfg.data, "0" * 64)


def test_relative_paths_resolve_from_the_config_file_directory(tmp_path: Path) -> None:
    from conv2d_bundle.config import resolve_path

    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.base_dir == EXAMPLE_CONFIG.parent.absolute()
    assert resolve_path("calib.npy", cfg.base_dir) == EXAMPLE_CONFIG.parent.absolute() / "calib.npy"
    assert resolve_path(tmp_path / "c.npy", cfg.base_dir) == tmp_path / "c.npy"
    assert resolve_path("calib.npy", parse_config(example()).base_dir) == Path("calib.npy")  # a mapping: cwd


def test_minimal_builtin_config_gets_defaults() -> None:
    cfg = parse_config({"model": {"architecture": "conv2d_fsq"}, "labels": ["a", "b", "c", "d"]})
    assert cfg.model.input_name == "imu_input"
    assert cfg.data["export"]["onnx"]["opset"] == 13


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["model"].update(input_shape=[1, 9, 2]),
            "model.input_shape: expected 4 integers, got [1, 9, 2]",
        ),
        (
            lambda c: c["model"].update(architecture="resnet"),
            "model.architecture: unknown architecture 'resnet'",
        ),
        (lambda c: c["model"].update(target="no_colon"), "model.target"),
        (lambda c: c.update(labels=["a", "b"]), "labels: 2 labels for a model with n_classes=4"),
        (lambda c: c.update(labels={0: "a", 2: "b"}), "without gaps"),
        (lambda c: c["metrics"].update(accuracy="high"), "metrics.accuracy: expected a finite number"),
        (lambda c: c["export"]["onnx"].update(opset=9), "export.onnx.opset"),
        (
            lambda c: c["export"]["coreml"].update(minimum_deployment_target="iOS12"),
            "minimum_deployment_target",
        ),
        (lambda c: c["export"]["hailo"].update(hw_arch="hailo9"), "export.hailo.hw_arch"),
        (lambda c: c["export"]["hailo"].update(hw_arch="hailo15h"), "expected one of hailo8, hailo8l"),
        (lambda c: c["export"].update(formats=["onnx", "tflite"]), "unknown format(s) ['tflite']"),
        (lambda c: c.update(surprise=1), "surprise: unknown section"),
        (lambda c: c["model"]["outputs"][0].update(dtype="int8"), "model.outputs[0].dtype"),
        (lambda c: c.pop("model"), "model: required mapping"),
        (lambda c: c["export"].update(onnx="x"), "export.onnx: expected a mapping, got str"),
        (lambda c: c.update(labels={0.5: "a"}), "labels: mapping keys must be class indices"),
    ],
)
def test_each_problem_is_named(edit: Any, message: str) -> None:
    cfg = example()
    edit(cfg)
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg)
    assert message in str(exc.value)


def test_all_problems_in_one_message() -> None:
    cfg = example()
    cfg["model"]["input_shape"] = [1, 9, 2]
    cfg["labels"] = ["only-one"]
    cfg["metrics"]["ece"] = float("nan")
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg)
    text = str(exc.value)
    assert "model.input_shape" in text and "labels:" in text and "metrics.ece" in text


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping at the top level"):
        parse_config(["a", "list"])


def _write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "c.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(_write(tmp_path, "model: [unclosed\n"))


def test_alias_bomb_is_refused_before_expanding(tmp_path: Path) -> None:
    # under training (free-form: every element is visited), 9**9 strings once expanded
    lines = ["training:", '  a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(
            f"  {cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    with pytest.raises(ConfigError, match="aliases are not allowed"):
        load_config(_write(tmp_path, "\n".join(lines) + "\n"))


def test_huge_config_is_refused_by_size(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError, match="the limit is"):
        load_config(p)


def test_non_utf8_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(_write(tmp_path, b"model: \xff\xfe\n"))


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_python_tags_are_not_constructed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, "model: !!python/object/apply:os.system ['true']\n"))


def test_parse_formats() -> None:
    assert parse_formats("coreml, onnx") == ["onnx", "coreml"]
    with pytest.raises(ConfigError, match="unknown format"):
        parse_formats("onnx,tflite")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.update(modle=c.pop("model")), "modle: unknown section (did you mean model?)"),
        (lambda c: c.update(lables=c.pop("labels")), "lables: unknown section (did you mean labels?)"),
        (
            lambda c: c["model"].update(outptus=c["model"].pop("outputs")),
            "model.outptus: unknown key (did you mean outputs?)",
        ),
        (
            lambda c: c["model"].update(input_shpe=c["model"].pop("input_shape")),
            "model.input_shpe: unknown key (did you mean input_shape?)",
        ),
    ],
)
def test_a_misspelt_key_is_reported_once_with_the_closest_one(edit: Any, expected: str) -> None:
    """A user model's config (no built-in defaults to hide the gap): the misspelling is the only error, not
    followed by the errors that only follow from it (before: 'model: required mapping, got nothing; labels: ...')."""
    config = {
        "model": {
            "target": "tests.cli.test_any_model:TupleNet",
            "input_name": "window",
            "input_shape": [1, 2, 1, 12],
            "outputs": [{"name": "logits"}, {"name": "embedding"}],
        },
        "labels": ["a", "b", "c", "d", "e"],
    }
    edit(config)
    with pytest.raises(ConfigError) as info:
        parse_config(config)
    assert str(info.value) == expected


def test_reference_taps_are_module_names_and_misspelt_keys_named() -> None:
    config = example()
    config["export"]["reference"]["tapz"] = ["encoder"]
    with pytest.raises(ConfigError, match=r"export\.reference\.tapz: unknown key \(did you mean taps\?\)"):
        parse_config(config)
    config["export"]["reference"] = {"taps": "encoder"}
    with pytest.raises(ConfigError, match=r"export\.reference\.taps: expected a list of module names"):
        parse_config(config)
    config["export"]["reference"] = {"taps": ["encoder.0", "classifier"]}
    assert parse_config(config).reference_options["taps"] == ["encoder.0", "classifier"]


def test_taps_absent_leave_the_normalized_config_and_hash_as_before() -> None:
    """Configs that name no taps hash as they did before taps existed: their bundles keep their EXP_HASH."""
    assert "taps" not in parse_config(example()).reference_options


# -- export.reference.inputs: real golden windows ---------------------------------------------------------


def _inputs_config(tmp_path: Path, inputs: Any, **reference: Any) -> Path:
    """The example config in ``tmp_path`` with ``export.reference.inputs`` (a path relative to it)."""
    config = example()
    config["export"]["reference"].update(inputs=inputs, **reference)
    path = tmp_path / "dogs.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _windows(n: int = 16, dtype: Any = "float32") -> Any:
    import numpy as np

    return np.random.default_rng(0).standard_normal((n, 9, 2, 100)).astype(dtype)


def test_reference_inputs_is_a_npy_or_npz_path_and_absent_changes_nothing() -> None:
    assert "inputs" not in parse_config(example()).reference_options  # absent: the hash as before
    config = example()
    config["export"]["reference"]["inputs"] = "windows.npz"
    assert parse_config(config).reference_options["inputs"] == "windows.npz"  # as written: as hashed
    for bad in ("windows.csv", "", 3, ["a.npy"]):
        config["export"]["reference"]["inputs"] = bad
        with pytest.raises(
            ConfigError, match=r"export\.reference\.inputs: expected the path of a \.npy or \.npz"
        ):
            parse_config(config)
    config["export"]["reference"] = {"input": "windows.npy"}
    with pytest.raises(ConfigError, match=r"export\.reference\.input: unknown key \(did you mean inputs\?\)"):
        parse_config(config)


def test_reference_inputs_load_relative_to_the_config(tmp_path: Path) -> None:
    import hashlib

    import numpy as np

    from conv2d_bundle.config import load_reference_inputs

    assert load_reference_inputs(load_config(EXAMPLE_CONFIG)) is None
    np.save(tmp_path / "w.npy", _windows(16, "float64"))  # float64 is cast to float32
    ref = load_reference_inputs(load_config(_inputs_config(tmp_path, "w.npy", num_samples=16)))
    assert ref is not None and ref.windows.dtype == np.float32 and ref.windows.shape == (16, 9, 2, 100)
    np.testing.assert_array_equal(ref.windows, _windows(16, "float64").astype(np.float32))
    assert ref.sha256 == hashlib.sha256((tmp_path / "w.npy").read_bytes()).hexdigest()
    assert (ref.written, ref.name, ref.path, ref.array) == ("w.npy", "w.npy", tmp_path / "w.npy", None)
    # a .npz: the array named after the model's input, or its only array
    np.savez(tmp_path / "named.npz", labels=np.arange(16), imu_input=_windows(16))
    ref = load_reference_inputs(load_config(_inputs_config(tmp_path, "named.npz", num_samples=16)))
    assert ref is not None and ref.array == "imu_input"
    np.testing.assert_array_equal(ref.windows, _windows(16))
    np.savez(tmp_path / "one.npz", x=_windows(16, "float16"))
    ref = load_reference_inputs(load_config(_inputs_config(tmp_path, "one.npz", num_samples=16)))
    assert ref is not None and ref.array == "x" and ref.windows.dtype == np.float32


def _nan_windows() -> Any:
    w = _windows()
    w[3, 0, 0, 7] = float("nan")
    return w


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.npy", None, r"missing\.npy: file not found$"),
        ("junk.npy", b"not numpy", r"junk\.npy: cannot read a \.npy or \.npz array: "),
        (
            "pickled.npy",
            "object",
            r"pickled\.npy: cannot read a \.npy or \.npz array: Object arrays cannot be loaded",
        ),
        ("two.npz", {"a": _windows(), "b": _windows()}, r"holds arrays \['a', 'b'\], none named 'imu_input'"),
        ("ints.npy", _windows().astype("int64"), r"ints\.npy: dtype int64, expected floating point windows"),
        (
            "nhwc.npy",
            _windows().transpose(0, 2, 3, 1),
            r"shape \[16, 2, 100, 9\], expected \[N, 9, 2, 100\] \(model.input_shape but the batch\); the same "
            r"sizes in another order",
        ),
        ("flat.npy", _windows().reshape(16, -1), r"shape \[16, 1800\], expected \[N, 9, 2, 100\]"),
        ("nan.npy", _nan_windows(), r"NaN or infinite values in 1 window\(s\) \(the first: row 3\)"),
        ("huge.npy", _windows(16, "float64") * 1e39, r"values beyond float32's range in 16 window\(s\)"),
        ("few.npy", _windows(8), r"few\.npy: 8 windows, fewer than export\.reference\.num_samples \(16\)"),
    ],
)
def test_bad_reference_inputs_are_one_config_error_naming_the_file(
    tmp_path: Path, name: str, content: Any, message: str
) -> None:
    import numpy as np

    from conv2d_bundle.config import load_reference_inputs

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    elif isinstance(content, str):
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content is not None:
        np.save(path, content)
    cfg = load_config(_inputs_config(tmp_path, name, num_samples=16))
    with pytest.raises(
        ConfigError, match=rf"^export\.reference\.inputs {re.escape(str(tmp_path))}/.*{message}"
    ):
        load_reference_inputs(cfg)


def test_an_image_classifier_declares_logits() -> None:
    cfg = example()
    cfg["model"] = {
        "target": "pkg.mod:factory",
        "input_name": "pixel_values",
        "input_shape": [1, 3, 32, 32],
        "outputs": [{"name": "logits", "dtype": "float32", "kind": "logits"}],
    }
    cfg["labels"] = [str(i) for i in range(10)]
    spec = parse_config(cfg).model
    assert spec.class_output is not None and spec.class_output.name == "logits"
    cfg["model"]["outputs"][0]["kind"] = "logit"
    with pytest.raises(
        ConfigError, match=r"expected one of codes, probabilities, logits, tensor, got 'logit'"
    ):
        parse_config(cfg)
