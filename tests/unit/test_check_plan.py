"""The check plan: which checks a session should run, whatever the command line selected, and how a check's
id and target are told from its node id."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conv2d_bundle import targets
from conv2d_bundle.verify import plan as check_plan
from conv2d_bundle.verify.plan import (
    CHECKS_DIR,
    Expected,
    Wanted,
    check_id,
    collect_expected,
    describe_selection,
    item_id,
    module_of,
    module_paths,
    target_of,
    target_of_id,
    whole_modules,
)


@pytest.mark.parametrize(
    ("nodeid", "cid"),
    [
        (
            "checks/test_targets.py::test_parity[onnx-confidence-7]",
            "test_targets.py::test_parity[onnx-confidence-7]",
        ),
        (
            "../../site/conv2d_bundle/targets/ios/test_ios.py::TestSpec::test_x",
            "test_ios.py::TestSpec::test_x",
        ),
        ("test_general.py::test_x", "test_general.py::test_x"),
        ("pkg.py/sub/test_a.py::test_b", "test_a.py::test_b"),
        ("a.py::b.py::test_c", "b.py::test_c"),  # the last part that is a file
        ("no_module::test_x", "no_module::test_x"),
        ("checks/test_general.py", "test_general.py"),
    ],
)
def test_check_id_is_the_file_name_and_test_name(nodeid: str, cid: str) -> None:
    assert check_id(nodeid) == cid


def test_module_of_a_node_id() -> None:
    assert module_of("checks/test_targets.py::test_parity[onnx-c-1]") == "test_targets.py"
    assert module_of("x/test_onnx.py") == "test_onnx.py"
    assert module_of("a/test_ios.py::TestSpec::test_x[1]") == "test_ios.py"


@pytest.mark.parametrize(
    ("cid", "target"),
    [
        ("test_general.py::test_manifest", "general"),
        ("test_targets.py::test_parity[onnx-confidence-7]", "onnx"),
        ("test_targets.py::test_format_built[ios]", "ios"),
        ("test_targets.py::test_parity", None),
        ("test_onnx.py::test_opset", "onnx"),
        ("test_hailo.py::test_hef[x]", "hailo"),
        ("test_executorch.py", "executorch"),
        ("test_theirs.py::test_x", None),
        ("test_general.py.bak::test_x", None),
    ],
)
def test_the_target_of_a_check_id(cid: str, target: str | None) -> None:
    assert target_of_id(cid) == target


def test_module_paths_general_first_then_each_target_with_the_shared_checks() -> None:
    paths = module_paths(["onnx", "ios"])
    assert list(paths) == ["general", "onnx", "ios"]
    assert paths["general"] == [CHECKS_DIR / "test_general.py"]
    assert paths["onnx"] == [targets.get_target("onnx").check_module_path, CHECKS_DIR / "test_targets.py"]
    assert paths["ios"][0].name == "test_ios.py" and paths["ios"][1] == CHECKS_DIR / "test_targets.py"
    assert CHECKS_DIR == Path(check_plan.__file__).parents[1] / "checks" and CHECKS_DIR.is_dir()


class FakeItem:
    def __init__(self, *marks: pytest.MarkDecorator, path: Path = Path("t.py")) -> None:
        self.marks = {m.mark.name: m.mark for m in marks}
        self.path = path

    def get_closest_marker(self, name: str) -> Any:
        return self.marks.get(name)


def _item(*marks: pytest.MarkDecorator) -> Any:
    return FakeItem(*marks)


def test_the_target_of_an_item_is_its_marker() -> None:
    assert target_of(_item(pytest.mark.conv2d_target("onnx"))) == "onnx"
    assert target_of(_item(pytest.mark.conv2d_target)) is None  # no argument: no target
    assert target_of(_item(pytest.mark.slow("onnx"))) is None  # another marker
    assert target_of(_item()) is None


def test_wanted_checks_of_the_session() -> None:
    onnx, ios, general = (_item(pytest.mark.conv2d_target(t)) for t in ("onnx", "ios", "general"))
    unmarked = _item()
    signed = _item(pytest.mark.conv2d_target("general"), pytest.mark.conv2d_needs_trusted_key)
    timed = _item(pytest.mark.conv2d_target("onnx"), pytest.mark.conv2d_needs_benchmark)
    plain = Wanted(["onnx"])
    assert (plain(onnx), plain(ios), plain(general), plain(unmarked)) == (True, False, True, True)
    assert (plain(signed), plain(timed)) == (False, False)
    assert Wanted(["onnx"], signed=True)(signed) and not Wanted(["onnx"], signed=True)(timed)
    assert Wanted(["onnx"], benchmark=True)(timed) and not Wanted(["onnx"], benchmark=True)(signed)
    assert not Wanted(["ios"], benchmark=True)(timed)


_NOTSET = object()


def _config(*args: str, plugins: tuple[str, ...] = ("cacheprovider", "stepwise"), **options: Any) -> Any:
    """A config as pytest makes it: its own options always, ``--lf`` and ``--sw`` only with the plugins that
    add them, and ``getoption`` of an option nobody added a ValueError unless a default is given."""
    known: dict[str, Any] = {"keyword": "", "markexpr": "", "deselect": None, "maxfail": 0}
    if "cacheprovider" in plugins:
        known["lf"] = False
    if "stepwise" in plugins:
        known.update(stepwise=False, stepwise_skip=False)
    known.update(options)

    def getoption(name: str, default: Any = _NOTSET) -> Any:
        if name in known:
            return known[name]
        if default is _NOTSET:
            raise ValueError(f"no option named {name!r}")
        return default

    return SimpleNamespace(args=list(args), getoption=getoption)


def test_whole_modules_only_when_the_run_collected_modules_whole(tmp_path: Path) -> None:
    a1, a2, b = (
        FakeItem(path=tmp_path / "a.py"),
        FakeItem(path=tmp_path / "a.py"),
        FakeItem(path=tmp_path / "b.py"),
    )
    items: list[Any] = [a1, b, a2]
    assert whole_modules(_config("checks"), items) == {
        (tmp_path / "a.py").resolve(): [a1, a2],
        (tmp_path / "b.py").resolve(): [b],
    }
    assert whole_modules(_config("checks", "checks/test_general.py::test_x"), items) == {}
    assert whole_modules(_config("checks", lf=True), items) == {}
    assert len(whole_modules(_config("checks", plugins=()), items)) == 2  # -p no:cacheprovider: no --lf


def test_describe_selection_without_the_plugins_of_lf_and_sw() -> None:
    """-p no:cacheprovider -p no:stepwise: no --lf, no --sw, and still a description."""
    assert describe_selection(_config("a.py::test_x", plugins=(), keyword="parity", maxfail=1)) == (
        "a.py::test_x -k parity --maxfail 1"
    )


def test_describe_selection_names_how_the_run_narrowed_the_checks(tmp_path: Path) -> None:
    module = tmp_path / "test_general.py"
    module.write_text("")
    plain = tmp_path / "notes"
    plain.write_text("")
    assert describe_selection(_config(str(tmp_path))) == ""  # a whole directory
    assert describe_selection(_config(str(module))) == str(module)
    assert describe_selection(_config(str(plain))) == str(plain)  # any file
    assert describe_selection(_config("gone/test_x.py")) == "gone/test_x.py"  # a module, even if missing
    assert describe_selection(_config(f"{tmp_path}::test_x")) == f"{tmp_path}::test_x"
    (tmp_path / "odd.py").mkdir()
    assert describe_selection(_config(str(tmp_path / "odd.py"))) == ""  # a directory named like a module
    options: dict[str, Any] = {
        "keyword": "parity",
        "markexpr": "not slow",
        "deselect": ["a::b", "c::d"],
        "lf": True,
        "stepwise": True,
        "stepwise_skip": True,
        "maxfail": 3,
    }
    assert describe_selection(_config(str(tmp_path), **options)) == (
        "-k parity -m not slow --deselect a::b --deselect c::d --lf --sw --sw-skip --maxfail 3"
    )
    assert describe_selection(_config(str(tmp_path), keyword="", markexpr="", maxfail=0, lf=False)) == ""


# -- collecting the full set, in this very session -----------------------------------------------------------

MODULES = {
    "general": """
        import pytest
        pytestmark = pytest.mark.conv2d_target("general")
        def test_manifest(): pass
        @pytest.mark.conv2d_needs_trusted_key
        def test_signature(): pass
        class TestConfig:
            def test_schema(self): pass
    """,
    "target": """
        import pytest
        pytestmark = pytest.mark.conv2d_target("onnx")
        def test_opset(): pass
        @pytest.mark.conv2d_needs_benchmark
        def test_latency(): pass
    """,
    "shared": """
        import pytest
        @pytest.mark.parametrize("t", [pytest.param("onnx", marks=pytest.mark.conv2d_target("onnx"), id="onnx"),
                                       pytest.param("ios", marks=pytest.mark.conv2d_target("ios"), id="ios")])
        def test_parity(t): pass
        def test_unmarked(): pass
    """,
    "skipped": """
        import pytest
        pytest.skip("no onnx runtime here", allow_module_level=True)
    """,
    "broken": """
        raise ImportError("no module named onnx")
    """,
}


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, list[Path]]]:
    """Check modules written under tmp_path, named uniquely, standing in for module_paths()."""

    def make(**kinds: list[str]) -> dict[str, list[Path]]:
        paths: dict[str, list[Path]] = {}
        for target, names in kinds.items():
            for kind in names:
                path = tmp_path / f"test_{kind}_{tmp_path.name}.py"
                path.write_text(textwrap.dedent(MODULES[kind]))
                paths.setdefault(target, []).append(path)
        monkeypatch.setattr(
            check_plan, "module_paths", lambda names: {t: paths[t] for t in ["general", *names]}
        )
        return paths

    return make


def test_collects_every_wanted_check_of_each_target(request: pytest.FixtureRequest, plan: Any) -> None:
    paths = plan(general=["general"], onnx=["target", "shared"], ios=["shared"])
    general, target, shared = (p.name for p in [paths["general"][0], *paths["onnx"]])
    out = collect_expected(request.session, Wanted(["onnx", "ios"]))
    assert out.ids == {
        "general": [f"{general}::TestConfig::test_schema", f"{general}::test_manifest"],
        "onnx": [f"{shared}::test_parity[onnx]", f"{target}::test_opset"],
        "ios": [f"{shared}::test_parity[ios]"],
    }
    assert out.owners == {general: ["general"], target: ["onnx"], shared: ["onnx", "ios"]}
    assert (out.errors, out.skipped) == ({}, {})
    signed = collect_expected(request.session, Wanted(["onnx", "ios"], signed=True, benchmark=True))
    assert (
        f"{general}::test_signature" in signed.ids["general"]
        and f"{target}::test_latency" in signed.ids["onnx"]
    )


def test_reuses_what_the_run_collected(request: pytest.FixtureRequest, plan: Any) -> None:
    paths = plan(general=["general"], onnx=["target"])
    # the run collected it, and found nothing wanted there
    seen: dict[Path, list[pytest.Item]] = {paths["onnx"][0].resolve(): []}
    out = collect_expected(request.session, Wanted(["onnx"]), seen)
    assert out.ids["onnx"] == [] and len(out.ids["general"]) == 2


def test_a_skipped_or_broken_module_is_reported_not_hidden(request: pytest.FixtureRequest, plan: Any) -> None:
    paths = plan(general=["general"], onnx=["skipped", "broken"])
    skipped, broken = (p.name for p in paths["onnx"])
    out = collect_expected(request.session, Wanted(["onnx"]))
    assert out.ids["onnx"] == [] and out.skipped == {skipped: "no onnx runtime here"}
    assert list(out.errors) == [broken] and out.errors[broken].startswith(
        "ImportError while importing test module"
    )


def test_an_exception_without_a_message_is_named_by_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    class Session:
        def gethookproxy(self, path: Path) -> Any:
            def makemodule(module_path: Path, parent: Any) -> Any:
                raise RuntimeError("\n  \n")

            return SimpleNamespace(pytest_pycollect_makemodule=makemodule)

    out = Expected()
    assert check_plan._collect(Session(), Path("test_x.py"), out) == []  # type: ignore[arg-type]
    assert out.errors == {"test_x.py": "RuntimeError"}


def test_item_ids_name_the_module_file_and_the_nodes_below_it(request: pytest.FixtureRequest) -> None:
    assert (
        item_id(request.node)
        == "test_check_plan.py::test_item_ids_name_the_module_file_and_the_nodes_below_it"
    )


@pytest.fixture
def shrunk(request: pytest.FixtureRequest) -> Any:
    """This session's collection settings set as ``-o python_functions=test_[!p]*`` would, for one test."""
    config = request.config
    cache = config._inicache
    saved = cache.get("python_functions")
    cache["python_functions"] = ["test_[!p]*"]
    yield config
    cache.pop("python_functions")
    if saved is not None:
        cache["python_functions"] = saved


def test_collection_deviations_name_the_settings_that_differ_from_pytests_defaults(shrunk: Any) -> None:
    assert check_plan.collection_deviations(shrunk) == ["python_functions = test_[!p]*"]
    with check_plan.pytest_default_collection(shrunk):
        assert check_plan.collection_deviations(shrunk) == []
    assert shrunk.getini("python_functions") == ["test_[!p]*"]  # the run's own value, back


def test_the_expected_set_is_collected_with_pytests_default_names(
    request: pytest.FixtureRequest, plan: Any, shrunk: Any
) -> None:
    paths = plan(general=["general"], onnx=["shared"])
    shared = paths["onnx"][0]
    # what the run collected under python_functions = test_[!p]*: no test_parity, so it is not reused
    seen: dict[Path, list[pytest.Item]] = {shared.resolve(): []}
    out = collect_expected(request.session, Wanted(["onnx"]), seen)
    assert out.ids["onnx"] == [f"{shared.name}::test_parity[onnx]"]
    assert f"{paths['general'][0].name}::test_manifest" in out.ids["general"]


def test_defaults_that_do_not_take_are_an_error_not_a_smaller_set(
    request: pytest.FixtureRequest, plan: Any, shrunk: Any
) -> None:
    """_collect itself, outside pytest_default_collection (as if a pytest release read the names elsewhere):
    the module's source defines test_parity, the collection lacks it, so the module is an error."""
    paths = plan(general=["general"], onnx=["shared"])
    shared = paths["onnx"][0]
    assert check_plan.defined_checks(shared) == {"test_parity", "test_unmarked"}
    out = Expected()
    assert check_plan._collect(request.session, shared, out) == []
    assert out.errors == {shared.name: "collected without test_parity"}


def test_defined_checks_reads_functions_and_test_class_methods(plan: Any) -> None:
    general = plan(general=["general"])["general"][0]
    assert check_plan.defined_checks(general) == {"test_manifest", "test_signature", "test_schema"}
