"""The pytest plugin behind ``pytest checks --bundle B --target T``: options, fixtures and hooks only.

Registered by the ``pytest11`` entry point ``conv2d_bundle`` (so ``-p no:conv2d_bundle`` works) and, for a
source checkout without the entry point, by the root ``conftest.py``. pytest autoloads it in every project
where the package is installed, so without ``--bundle`` it adds its options and nothing else: its marker is
namespaced (``conv2d_target``), its fixtures are registered only with ``--bundle``, and it parametrizes only
the checks that carry its marker. The report is :class:`conv2d_bundle.verify.report.ValidationReport`; the verdict
rules are in :mod:`conv2d_bundle.verify.verdict`. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle import targets
from conv2d_bundle.bundle import isolation as bundle_isolation
from conv2d_bundle.errors import BundleError
from conv2d_bundle.targets import NOT_REQUESTED
from conv2d_bundle.verify import fixtures as check_fixtures
from conv2d_bundle.verify import hypothesis_storage
from conv2d_bundle.verify.fixtures import PROFILES, BundleSession, details_key, state_key
from conv2d_bundle.verify.plan import (
    CHECKS_DIR,
    FORMAT_CHECK,
    MARKER,
    NEEDS_BENCHMARK,
    NEEDS_TRUSTED_KEY,
    PER_TARGET,
    Wanted,
    collection_deviations,
    describe_selection,
    target_of,
)
from conv2d_bundle.verify.report import ValidationReport, runtime_versions

#: the largest batch the parity checks run (also 1 and 7); capped at the bundle's golden rows
PARITY_BATCH_SIZES = (1, 7, 64)
_REPORT_PLUGIN = "conv2d_bundle_report"
GROUP = "conv2d_bundle"
_FIXTURES_PLUGIN = "conv2d_bundle_fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _options() -> list[tuple[str, dict[str, Any]]]:
    """(short name, argparse attributes) of each option; each is registered as ``--conv2d-<name>`` (dest
    ``conv2d_<name>``), and under its short name only where no other plugin or conftest has that name."""
    return [
        ("bundle", {"metavar": "DIR", "help": "bundle directory, or a hash prefix looked up in --artifacts"}),
        (
            "artifacts",
            {
                "metavar": "DIR",
                "help": "artifacts directory for hash prefixes (default: $CONV2D_ARTIFACTS or ./artifacts)",
            },
        ),
        (
            "target",
            {
                "default": "general",
                "type": parse_targets,
                "metavar": "TARGETS",
                "help": "deployment target(s) to verify, comma-separated: general, the installed targets "
                f"({', '.join(targets.target_names())}) or all; general checks always run (default: general)",
            },
        ),
        (
            "strict-targets",
            {
                "action": "store_true",
                "help": "count every skipped check as failed (release pipelines that must verify everything)",
            },
        ),
        (
            "check-profile",
            {
                "default": "default",
                "type": parse_profile,  # not choices=: "seal" (create's, at seal time) works but is not offered
                "metavar": "PROFILE",
                "help": "fuzzing budget of the property checks: quick, default (a few seconds) or thorough",
            },
        ),
        (
            "tolerance-policy",
            {
                "metavar": "FILE",
                "help": "the verifier's parity tolerances (YAML/JSON: per dtype and output, {atol, rtol}); a "
                "bundle may ask for tighter ones, never looser (default: the built-in policy)",
            },
        ),
        (
            "trusted-key",
            {"metavar": "PEM", "help": "Ed25519 public key (PEM): fail unless MANIFEST.json is signed by it"},
        ),
        ("expect-hash", {"help": argparse.SUPPRESS}),
        ("benchmark", {"action": "store_true", "help": "record latency and throughput in the report"}),
    ]


def dest(name: str) -> str:
    """The option's destination: ``conv2d_bundle`` for ``bundle`` (read with ``config.getoption``)."""
    return "conv2d_" + name.replace("-", "_")


def add_options(parser: pytest.Parser) -> None:
    """The plugin's one option group, under namespaced long names (``--conv2d-bundle``, ...). Apart from the
    hook so that unit tests can call it with a parser of their own: pytest calls the hook once per
    interpreter, before any test runs. The short names come later (:func:`add_short_names`)."""
    group = parser.getgroup(GROUP, "conv2d-bundle: verify a deployment bundle")
    for name, attrs in _options():
        hidden = attrs["help"] is argparse.SUPPRESS
        help_text = attrs["help"] if hidden else f"{attrs['help']} (short: --{name}, where free)"
        group.addoption(f"--conv2d-{name}", **{**attrs, "dest": dest(name), "help": help_text})


def add_short_names(parser: pytest.Parser) -> list[str]:
    """``--bundle``, ``--target``, ... as aliases of the namespaced options, each only where no plugin or
    conftest loaded so far defines it (another suite's own ``--target`` stays theirs: use
    ``--conv2d-target`` there). The names added."""
    groups = getattr(parser, "_groups", None)  # pytest's; should it go, add no short name (fail closed)
    if groups is None:
        return []
    taken = {
        name
        for group in [*groups, getattr(parser, "_anonymous", None)]
        if group is not None
        for option in group.options
        for name in option.names()
    }
    group = parser.getgroup(GROUP)
    added = []
    for name, attrs in _options():
        if f"--{name}" not in taken:
            group.addoption(f"--{name}", **{**attrs, "dest": dest(name), "help": argparse.SUPPRESS})
            added.append(f"--{name}")
    return added


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser) -> Any:
    """The short option names, once the initial conftests have added theirs (before the command line is
    parsed in full)."""
    try:
        return (yield)
    finally:
        add_short_names(parser)


def parse_targets(value: str) -> str:
    """``onnx``, ``ios,hailo`` or ``all``: each name known, or a usage error listing the known ones."""
    try:
        return ",".join(targets.parse_target_list(value))
    except BundleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_profile(value: str) -> str:
    if value not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {value!r} (known: quick, default, thorough)")
    return value


def _resolve_bundle(config: pytest.Config, ref: str) -> Any:
    from conv2d_bundle.bundle.store import Bundle, default_artifacts_dir, get_bundle
    from conv2d_bundle.errors import BundleError

    # a bundle in a registry is checked from the pull cache (conv2d_bundle.oci.cache)
    if ref.startswith("oci://"):
        from conv2d_bundle.oci.cache import pull_from_registry

        try:
            return Bundle(pull_from_registry(ref))
        except BundleError as exc:
            raise pytest.UsageError(f"--bundle {ref}: {exc}") from None
    path = Path(ref)
    if path.is_dir():
        if not any((path / name).exists() for name in ("metadata.json", "MANIFEST.json")):
            raise pytest.UsageError(f"--bundle {ref}: not a bundle (no metadata.json or MANIFEST.json)")
        return Bundle(path)
    artifacts = Path(config.getoption(dest("artifacts")) or default_artifacts_dir())
    try:
        return get_bundle(artifacts, ref)
    except BundleError as exc:
        raise pytest.UsageError(f"--bundle {ref}: {exc}") from None


def _policy(config: pytest.Config) -> Any:
    from conv2d_bundle.errors import BundleError
    from conv2d_bundle.parity.tolerance import TolerancePolicy

    path = config.getoption(dest("tolerance-policy"))
    if not path:
        return TolerancePolicy()
    try:
        return TolerancePolicy.load(path)
    except BundleError as exc:
        raise pytest.UsageError(f"--tolerance-policy: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): the deployment target a bundle check belongs to")
    config.addinivalue_line("markers", f"{PER_TARGET}: a bundle check parametrized over the selected targets")
    config.addinivalue_line(
        "markers", f"{FORMAT_CHECK}: the check that runs whether the target's format is there"
    )
    config.addinivalue_line("markers", f"{NEEDS_TRUSTED_KEY}: a bundle check run only with --trusted-key")
    config.addinivalue_line("markers", f"{NEEDS_BENCHMARK}: a bundle check run only with --benchmark")
    ref = config.getoption(dest("bundle"))
    if not ref:
        return
    bundle = _resolve_bundle(config, ref)
    bundle_isolation.refuse_bundle_configuration(config, bundle.bundle_dir)
    target = config.getoption(dest("target"))
    if config.pluginmanager.is_blocked(_REPORT_PLUGIN):
        names = target.split(",")
        removed = _remove_reports(bundle.bundle_dir, ["general", *targets.selected(names), *names])
        raise pytest.UsageError(
            f"-p no:{_REPORT_PLUGIN}: the bundle checks' verdict is written by that plugin; a run without it "
            f"would leave an older report standing{f' (removed: {removed})' if removed else ''}"
        )
    config.add_cleanup(hypothesis_storage.isolate())  # no .hypothesis/ in the working directory
    state = BundleSession(
        bundle=bundle,
        targets=_session_targets(bundle, target.split(",")),
        expect_hash=config.getoption(dest("expect-hash")) or _expected_hash(bundle),
        strict=config.getoption(dest("strict-targets")),
        profile=config.getoption(dest("check-profile")),
        policy=_policy(config),
    )
    config.stash[state_key] = state
    config.pluginmanager.register(check_fixtures, _FIXTURES_PLUGIN)
    # xdist workers send their results to the controller; --collect-only verifies nothing, so reports nothing
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        report_targets = state.targets + (["all"] if "all" in target.split(",") else [])
        config.pluginmanager.register(
            ValidationReport(
                bundle.bundle_dir,
                state.expect_hash,
                report_targets,
                strict=state.strict,
                wanted=_wanted(config, state),
                selection=describe_selection(config),
                tolerance_policy=state.policy.as_dict(),
                # what the verdict is about; None when MANIFEST.json is unreadable (test_manifest_verifies
                # fails then, and a report without a digest never counts for the bundle)
                content_digest=bundle.content_digest_or_none(),
                profile=state.profile,
                deviations=collection_deviations(config),
                golden_coverage=_golden_coverage(bundle),
            ),
            _REPORT_PLUGIN,
        )


def _session_targets(bundle: Any, names: list[str]) -> list[str]:
    """The targets whose checks run. ``all`` is every target the bundle was built for: a format recorded as
    never asked for (or not recorded at all, in bundles from before that was recorded) is left out, while one
    that was asked for and failed stays in (and fails). Named targets always run."""
    chosen = targets.selected(names)
    if "all" not in names:
        return chosen
    try:
        formats = bundle.metadata.get("formats", {})
    except BundleError:  # unreadable metadata: every target runs, and the general checks say what is wrong
        return chosen
    named = set(names)
    return [
        t
        for t in chosen
        if t in named
        or (formats.get(targets.get_target(t).format) or {}).get("status") not in (None, NOT_REQUESTED)
    ]


def _golden_coverage(bundle: Any) -> Any:
    """metadata.json ``model.reference.coverage`` (what the golden set exercises), or None: a bundle from before
    it was recorded, or unreadable metadata (the general checks say what is wrong)."""
    try:
        reference = (bundle.metadata.get("model") or {}).get("reference") or {}
    except (BundleError, AttributeError):
        return None
    return reference.get("coverage") if isinstance(reference, dict) else None


def _expected_hash(bundle: Any) -> str:
    """The EXP_HASH the bundle must state: its directory's name where that is a hash (the artifacts layout),
    else its own (a bundle copied under a name of one's choosing; test_exp_hash_recomputes still holds it to
    its config and weights)."""
    from conv2d_bundle.bundle.digest import is_exp_hash
    from conv2d_bundle.bundle.store import STAGING_PREFIX

    name = str(bundle.bundle_dir.name)
    if is_exp_hash(name) or name.startswith(STAGING_PREFIX):  # create passes --expect-hash for its staging
        return name
    try:
        return str(bundle.metadata.get("exp_hash") or name)
    except BundleError:  # unreadable metadata: the general checks say so
        return name


def _remove_reports(bundle_dir: Path, names: list[str]) -> str:
    out = bundle_dir / "validation"
    if out.is_symlink():
        return ""
    removed = []
    for name in dict.fromkeys(names):
        path = out / f"{name}_validation.json"
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path.name)
    return ", ".join(removed)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo what pytest_configure registered (pytester and in-process runs reuse the interpreter)."""
    for name in (_REPORT_PLUGIN, _FIXTURES_PLUGIN):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin, name)
    if state_key in config.stash:
        del config.stash[state_key]


def _wanted(config: pytest.Config, state: BundleSession) -> Wanted:
    return Wanted(
        state.targets, bool(config.getoption(dest("trusted-key"))), bool(config.getoption(dest("benchmark")))
    )


class _ChecksPackage(pytest.Package):
    """The checks package, plus the structural checks of each selected target, which live in the target's
    own package (``targets/<name>/test_<name>.py``, or wherever a target of another package keeps them)."""

    def collect(self) -> Any:
        yield from super().collect()
        yield from target_check_modules(self)


def target_check_modules(package: pytest.Collector) -> Generator[pytest.Collector, None, None]:
    """The structural check module of each selected target, made as pytest makes a module (so plugins that
    shape modules apply) and collected under the checks package."""
    for name in package.config.stash[state_key].targets:
        path = targets.get_target(name).check_module_path
        module = package.session.gethookproxy(path).pytest_pycollect_makemodule(
            module_path=path, parent=package
        )
        if module is not None:
            yield module


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if state_key not in parent.config.stash or path.resolve() != CHECKS_DIR.resolve():
        return None
    return _ChecksPackage.from_parent(parent, path=path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if target_of(item) or item.get_closest_marker(PER_TARGET)]
    if not ours:
        return
    state = config.stash.get(state_key, None)
    if state is None:
        raise pytest.UsageError(
            "bundle checks need a bundle: pass --bundle DIR (or a hash prefix with --artifacts)"
        )
    wanted = _wanted(config, state)
    # a per-target check with no target selected (--target general) is pytest's empty parameter set: dropped
    keep = [item for item in items if item not in ours or (target_of(item) and wanted(item))]
    deselected = [item for item in items if item not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A target whose format the bundle lacks fails once (``test_format_built``); its other checks are not
    run, each skipped with the same reason, instead of failing the same way one by one."""
    state = item.config.stash.get(state_key, None)
    if state is None:  # not a bundle session: no check of ours was collected (see modifyitems)
        return
    name = target_of(item)
    if name in (None, "general") or item.get_closest_marker(FORMAT_CHECK):
        return
    missing = state.missing_formats.get(name)
    if missing:
        pytest.skip(f"not checked: {missing} (see test_targets.py::test_format_built[{name}])")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    state = item.config.stash.get(state_key, None)
    if state is None:  # not a bundle session: no check of ours was collected (see modifyitems)
        return
    target = target_of(item)
    if target is None:
        return
    report = outcome.get_result()
    report.conv2d_target = target
    if call.when == "teardown":  # what ran the checks, for the controller's report under xdist
        report.conv2d_versions = runtime_versions()
    details = item.stash.get(details_key, None)
    if details:
        report.conv2d_details = dict(details)
    if call.excinfo is not None and report.failed:
        report.conv2d_message = _failure_message(call.excinfo)
    if report.skipped and state.strict:  # every phase: setup, call and teardown
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"--strict-targets: not verified: {reason}"
        report.conv2d_message = f"not verified (--strict-targets): {str(reason).removeprefix('Skipped: ')}"


def _failure_message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    exc = excinfo.value
    if isinstance(exc, pytest.fail.Exception):
        return str(exc.msg)
    text = str(exc)
    if isinstance(exc, AssertionError):
        return text.partition("\nassert ")[0].strip() or "assertion failed"
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the bundle checks from the bundle's config: one item per output (and per parity batch
    size), so a report names the output at fault. Only checks carrying the plugin's marker, and only with
    ``--bundle``: other suites' ``output_name`` or ``batch_size`` parameters are theirs.

    If the config cannot be read the items still exist (named after the error) and fail when they run:
    a broken bundle shows as failed checks, never as a collection error.
    """
    state = metafunc.config.stash.get(state_key, None)
    definition = metafunc.definition
    if state is None or not (
        definition.get_closest_marker(MARKER) or definition.get_closest_marker(PER_TARGET)
    ):
        return
    if "target_name" in metafunc.fixturenames:  # the checks every target gets, one item per target
        metafunc.parametrize(
            "target_name",
            [pytest.param(t, marks=getattr(pytest.mark, MARKER)(t), id=t) for t in state.targets],
            scope="session",
        )
    if "output_name" in metafunc.fixturenames:
        try:
            names = list(state.bundle.config.model.output_names)
        except Exception:  # any unreadable config: the check itself reports it
            names = ["<config.yaml unreadable>"]
        metafunc.parametrize("output_name", names)
    if "batch_size" in metafunc.fixturenames:
        metafunc.parametrize("batch_size", parity_batch_sizes(state.bundle))


def parity_batch_sizes(bundle: Any) -> list[int]:
    """1, 7 and 64, each capped at the configured number of golden windows: an id says what runs."""
    try:
        rows = int(bundle.config.reference_options["num_samples"])
    except Exception:  # unreadable config: the general checks report it; parity runs at the usual sizes
        rows = max(PARITY_BATCH_SIZES)
    return sorted({min(b, rows) for b in PARITY_BATCH_SIZES})
