"""Promise 6: the parsers of untrusted files return a valid object or raise the project's own error,
never anything else, and never hang (hypothesis, bounded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.schema import check_label_map, check_metadata, parse_json
from conv2d_bundle.config import load_config, parse_config
from conv2d_bundle.errors import BundleError

FUZZ = settings(
    max_examples=150,
    deadline=2000,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
config_keys = st.sampled_from(
    [
        "model",
        "labels",
        "metrics",
        "training",
        "export",
        "name",
        "architecture",
        "input_shape",
        "outputs",
        "kwargs",
        "target",
        "onnx",
        "opset",
        "formats",
    ]
)
config_like = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(config_keys | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=40,
)


def _only_our_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BundleError:
        pass


@FUZZ
@given(config_like)
def test_parse_config(data: Any) -> None:
    _only_our_errors(parse_config, data)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_load_config_bytes(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(raw)
    _only_our_errors(load_config, path)


@FUZZ
@given(json_values)
def test_metadata(data: Any) -> None:
    _only_our_errors(check_metadata, data)


@FUZZ
@given(json_values)
def test_label_map(data: Any) -> None:
    _only_our_errors(check_label_map, data)


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_manifest(raw: bytes) -> None:
    _only_our_errors(BundleManifest.parse, raw)


@FUZZ
@given(st.binary(max_size=200))
def test_json_bytes(raw: bytes) -> None:
    _only_our_errors(parse_json, raw, "x.json")


@FUZZ
@given(st.binary(max_size=2000))
def test_hef_reader(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    from conv2d_bundle.targets.hailo.hef import read_hef

    path = tmp_path_factory.mktemp("hef") / "m.hef"
    path.write_bytes(b"\x01HEF" + raw)
    _only_our_errors(read_hef, path)


@settings(
    max_examples=60,
    deadline=5000,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(suffix=st.sampled_from([".tar.gz", ".zip"]), raw=st.binary(max_size=3000))
def test_archive_import(tmp_path_factory: pytest.TempPathFactory, suffix: str, raw: bytes) -> None:
    from conv2d_bundle.bundle.archive import import_archive

    root = tmp_path_factory.mktemp("imp")
    archive = root / f"x{suffix}"
    header = b"\x1f\x8b\x08\x00" if suffix == ".tar.gz" else b"PK\x03\x04"
    archive.write_bytes(header + raw)
    _only_our_errors(import_archive, archive, root / "out")
    out = root / "out"
    assert not out.exists() or [p.name for p in out.iterdir() if p.name != ".conv2d"] == []


def test_metadata_with_wrong_types_is_our_error(tmp_path: Path) -> None:
    from conv2d_bundle.bundle.store import Bundle, list_bundles

    d = tmp_path / "abcdefabcdef"
    d.mkdir()
    (d / "metadata.json").write_text(json.dumps({"exp_hash": "abcdefabcdef", "created_at": 5, "formats": []}))
    with pytest.raises(BundleError, match="created_at"):
        Bundle(d).metadata  # noqa: B018
    assert list_bundles(tmp_path) == []
