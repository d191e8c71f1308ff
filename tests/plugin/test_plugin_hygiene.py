"""pytest autoloads the plugin in every project where conv2d-bundle is installed: without ``--bundle`` it must
add its options and change nothing else (before the fix, a fixture named ``output_name`` was re-parametrized
to ``[<no bundle>]`` and a test marked ``target(...)`` aborted the session)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

UNRELATED_CONFTEST = """
import pytest

def pytest_configure(config):
    config.addinivalue_line("markers", "target(name): this project's own marker")

@pytest.fixture
def bundle():
    return "my bundle"

@pytest.fixture
def metadata():
    return {"mine": True}

@pytest.fixture
def manifest():
    return ["a.txt"]

@pytest.fixture(params=["logits", "probs"])
def output_name(request):
    return request.param
"""

UNRELATED_TESTS = """
import pytest

@pytest.mark.target("x86")
def test_own_fixtures(bundle, metadata, manifest):
    assert bundle == "my bundle" and metadata == {"mine": True} and manifest == ["a.txt"]

def test_own_parametrized_fixture(output_name):
    assert output_name in ("logits", "probs")

@pytest.mark.parametrize("batch_size", [3])
def test_own_batch_size(batch_size):
    assert batch_size == 3

def test_plugin_fixtures_are_absent(request):
    for name in ("reference_inputs", "onnx_session", "bundle_session", "compare_output"):
        with pytest.raises(pytest.FixtureLookupError):
            request.getfixturevalue(name)
"""


def test_unrelated_suite_runs_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(UNRELATED_CONFTEST)
    pytester.makepyfile(test_theirs=UNRELATED_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["plugins:*conv2d-bundle*"])  # it was loaded, and changed nothing:
    assert "conv2d-bundle report" not in result.stdout.str() and "need a bundle" not in result.stderr.str()


def test_plugin_options_stay_visible(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--conv2d-bundle=DIR*", "*--conv2d-tolerance-policy=FILE*"])
    assert "(short: --bundle, where free)" in " ".join(result.stdout.str().split())


OWN_OPTIONS_CONFTEST = """
def pytest_addoption(parser):
    parser.addoption("--target", default="x86", help="this project's own deployment target")
    group = parser.getgroup("mine")
    group.addoption("--bundle", action="store_true")
    group.addoption("--benchmark", default="none")

def pytest_configure(config):
    config.seen = (config.getoption("target"), config.getoption("bundle"), config.getoption("benchmark"))
"""


def test_a_suite_with_its_own_target_bundle_and_benchmark_options_runs_unchanged(
    pytester: pytest.Pytester,
) -> None:
    """Before: ``ValueError: option dest 'target' already used`` at start-up. The short names are the
    suite's; the plugin keeps its namespaced ones."""
    pytester.makeconftest(OWN_OPTIONS_CONFTEST)
    pytester.makepyfile(
        test_theirs="def test_options(pytestconfig):\n    assert pytestconfig.seen == ('arm', True, 'fast')\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--target", "arm", "--bundle", "--benchmark", "fast"
    )
    result.assert_outcomes(passed=1)
    assert "conv2d-bundle report" not in result.stdout.str()
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    assert "this project's own deployment target" in help_text and "--conv2d-target=TARGETS" in help_text


def test_unconfigure_undoes_configure(pytester: pytest.Pytester, bundle_copy: object) -> None:
    """In-process runs share the interpreter: after a run with --bundle, nothing of it stays registered."""
    seen: dict[str, object] = {}

    class Probe:
        @pytest.hookimpl(trylast=True)
        def pytest_unconfigure(self, config: pytest.Config) -> None:
            from conv2d_bundle.verify.fixtures import state_key

            seen["report"] = config.pluginmanager.get_plugin("conv2d_bundle_report")
            seen["fixtures"] = config.pluginmanager.get_plugin("conv2d_bundle_fixtures")
            seen["state"] = config.stash.get(state_key, None)

    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    # a copy: the run writes validation/general_validation.json into the bundle it is given
    result = pytester.runpytest("--bundle", str(bundle_copy), "-p", "no:cacheprovider", plugins=[Probe()])
    result.assert_outcomes(passed=1)
    assert seen == {"report": None, "fixtures": None, "state": None}
