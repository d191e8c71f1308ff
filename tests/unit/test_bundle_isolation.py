"""A verify obeys nothing in the bundle and writes nothing into it: which files are code or configuration,
when a session is refused (started, rooted, configured or collecting inside the bundle). Fake pytest configs:
tests/plugin runs the real ones.

Written for survivors of the 2026-12-05 mutation run (tests/README.md).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conv2d_bundle.bundle.isolation import code_or_configuration, refuse_bundle_configuration


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


def _config(
    *,
    inipath: Path | None = None,
    args: list[str] | None = None,
    started: Path | None = None,
    root: Path | None = None,
) -> SimpleNamespace:
    here = Path.cwd()  # the repository: outside every bundle under tmp_path
    return SimpleNamespace(
        inipath=inipath,
        args=args or [],
        invocation_params=SimpleNamespace(dir=started or here),
        rootpath=root or here,
    )


def test_configuration_read_from_the_bundle_refuses_the_session(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "pytest.ini").write_text("[pytest]\n")
    with pytest.raises(pytest.UsageError) as info:
        refuse_bundle_configuration(_config(inipath=bundle / "pytest.ini"), bundle)
    assert str(info.value) == (
        f"pytest read its configuration from {bundle / 'pytest.ini'}, inside the bundle under test: a verify "
        "never obeys the bundle it verifies (run conv2d pack verify DIR, or pytest --pyargs conv2d_bundle.checks "
        "--bundle DIR from another directory)"
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


@pytest.mark.parametrize("where", ["started", "root"])
def test_a_session_started_or_rooted_inside_the_bundle_is_refused(tmp_path: Path, where: str) -> None:
    """Started there, pytest loads the bundle's conftest.py (--pyargs arguments are not paths) and would write
    its cache there; rooted there, the cache lands there too."""
    bundle = tmp_path / "bundle"
    (bundle / "docs").mkdir(parents=True)
    inside = bundle / "docs"
    with pytest.raises(pytest.UsageError) as info:
        refuse_bundle_configuration(_config(**{where: inside}), bundle)
    what = "pytest was started" if where == "started" else "pytest's rootdir is"
    assert str(info.value).startswith(
        f"{what} inside the bundle under test ({inside}): pytest reads conftest.py"
    )
    refuse_bundle_configuration(_config(**{where: tmp_path}), bundle)  # beside it: fine
