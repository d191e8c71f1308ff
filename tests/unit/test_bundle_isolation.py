"""A verify obeys nothing in the bundle and writes nothing into it: which files are code or configuration,
when a session is refused, and pytest's cache moved out of the bundle. Fake pytest configs, no session:
tests/plugin runs the real ones.

Written for survivors of the 2026-12-05 mutation run (tests/README.md).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from conv2d_bundle.bundle_isolation import code_or_configuration, keep_cache_out, refuse_bundle_configuration


def test_code_and_test_configuration_are_found_by_name_or_suffix_at_any_depth() -> None:
    relpaths = [
        "conftest.py",
        "docs/deep/pytest.ini",
        "reference/setup.cfg",
        "tox.ini",
        "models/helper.py",
        "site/hook.pth",
        "cache/x.pyc",
        "docs/setup.cfg.txt",
        "docs/conftest.py.md",
        "pytest.ini.d/readme",
        "models/model.onnx",
    ]
    assert code_or_configuration(relpaths) == [
        "cache/x.pyc",
        "conftest.py",
        "docs/deep/pytest.ini",
        "models/helper.py",
        "reference/setup.cfg",
        "site/hook.pth",
        "tox.ini",
    ]
    assert code_or_configuration(["models/model.onnx", "MANIFEST.json"]) == []


def _config(*, inipath: Path | None = None, args: list[str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(inipath=inipath, args=args or [])


def test_configuration_read_from_the_bundle_refuses_the_session(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "pytest.ini").write_text("[pytest]\n")
    with pytest.raises(pytest.UsageError) as info:
        refuse_bundle_configuration(_config(inipath=bundle / "pytest.ini"), bundle)
    assert str(info.value) == (
        f"pytest read its configuration from {bundle / 'pytest.ini'}, inside the bundle under test: a verify "
        "never obeys the bundle it verifies. Run from another directory (pytest --pyargs conv2d_bundle.checks "
        "--bundle DIR) or use conv2d pack verify"
    )
    refuse_bundle_configuration(_config(inipath=tmp_path / "pytest.ini"), bundle)  # outside: fine


def test_a_collection_argument_inside_the_bundle_refuses_the_session(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "test_x.py").write_text("")
    arg = f"{bundle / 'test_x.py'}::test_a::b"
    with pytest.raises(pytest.UsageError) as info:
        refuse_bundle_configuration(_config(args=[arg]), bundle)
    assert str(info.value) == (
        f"{arg} lies inside the bundle under test: the checks are collected from the package "
        "(pytest --pyargs conv2d_bundle.checks --bundle DIR), never from the bundle"
    )
    # a name that is not there is pytest's own error to give ("file or directory not found"), not this one
    refuse_bundle_configuration(_config(args=[str(bundle / "missing.py")]), bundle)


def _session_config(cachedir: Path | None) -> SimpleNamespace:
    cache = SimpleNamespace(_cachedir=cachedir)
    return SimpleNamespace(cache=cache)


def test_pytests_cache_inside_the_bundle_is_moved_out_for_the_run(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = _session_config(bundle / ".pytest_cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pytest's private-API warning would reach the user's output
        undo = keep_cache_out(config, bundle)
    assert undo is not None
    scratch = config.cache._cachedir
    assert scratch.is_dir() and scratch.name.startswith("conv2d-pytest-cache-")
    assert not scratch.is_relative_to(bundle)
    assert config.cache._config is config  # the cache reports through this session's hooks
    shutil.rmtree(scratch)  # whatever removed it first, undoing stays quiet
    undo()
    assert not scratch.exists()


def test_a_cache_outside_the_bundle_or_none_is_left_alone(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    assert keep_cache_out(_session_config(tmp_path / ".pytest_cache"), bundle) is None
    assert keep_cache_out(_session_config(None), bundle) is None  # a cache that keeps no directory
    assert keep_cache_out(SimpleNamespace(cache=None), bundle) is None
    assert keep_cache_out(SimpleNamespace(), bundle) is None
