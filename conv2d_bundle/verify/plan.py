"""What a run of the bundle checks should cover: where the checks are, which target each belongs to, which of
them a session wants, and the full set it should have run, whatever the command line selected.

The checks live in three kinds of module: ``checks/test_general.py`` (every run), ``checks/test_targets.py``
(what every target gets: its format is present and its runner reproduces the golden outputs, parametrized per
selected target) and each target's own structural checks (``targets/<name>/test_<name>.py``, or any module a
target of another package names). The full set is collected independently of the run, so that a run that
selected a file, node ids, ``-k``/``-m``, ``--deselect`` or ``--lf`` (or that pytest-xdist distributed, with
nothing collected on the controller) is measured against everything the target has.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conv2d_bundle import targets

#: the marker that says which target a check belongs to (namespaced: other suites may have a ``target``)
MARKER = "conv2d_target"
#: the marker of the checks parametrized over the selected targets (test_targets.py)
PER_TARGET = "conv2d_per_target"
#: the marker of the check that a target's format is in the bundle (the one check that runs without it)
FORMAT_CHECK = "conv2d_format_check"
NEEDS_TRUSTED_KEY = "conv2d_needs_trusted_key"
NEEDS_BENCHMARK = "conv2d_needs_benchmark"
CHECKS_DIR = Path(__file__).parents[1] / "checks"  # conv2d_bundle/checks
GENERAL_MODULE = "test_general.py"
SHARED_MODULE = "test_targets.py"
_PARAM_TARGET = re.compile(r"\[([^\]-]+)")
#: pytest's own defaults for what a module, class or function must be called to be collected: the expected
#: set is collected with these, whatever an ini file, ``-o`` or ``PYTEST_ADDOPTS`` says
PYTEST_DEFAULTS: dict[str, list[str]] = {
    "python_files": ["test_*.py", "*_test.py"],
    "python_classes": ["Test"],
    "python_functions": ["test"],
}


def check_id(nodeid: str) -> str:
    """``test_targets.py::test_parity[onnx-confidence-7]``: the module's file name and the test's name, whatever
    the working directory or rootdir (a module collected from outside the rootdir gets an odd nodeid)."""
    parts = nodeid.split("::")
    module = max((i for i, p in enumerate(parts) if p.endswith(".py")), default=0)
    return "::".join([parts[module].rpartition("/")[2], *parts[module + 1 :]])


def item_id(item: pytest.Item) -> str:
    chain = item.listchain()
    module = max(i for i, node in enumerate(chain) if isinstance(node, pytest.Module))
    return "::".join([item.path.name, *(node.name for node in chain[module + 1 :])])


def target_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(MARKER)
    return str(marker.args[0]) if marker and marker.args else None


def module_paths(names: Sequence[str]) -> dict[str, list[Path]]:
    """Per target (``general`` first), the check modules whose checks belong to it."""
    out = {"general": [CHECKS_DIR / GENERAL_MODULE]}
    for name in names:
        out[name] = [targets.get_target(name).check_module_path, CHECKS_DIR / SHARED_MODULE]
    return out


def target_of_id(cid: str) -> str | None:
    """The target a check id belongs to, from its module (or, for the shared checks, its first parameter):
    what a report needs for an xdist crash report, which carries no attribute of ours."""
    module, _, rest = cid.partition("::")
    if module == GENERAL_MODULE:
        return "general"
    if module == SHARED_MODULE:
        m = _PARAM_TARGET.search(rest)
        return m.group(1) if m else None
    for name, target in targets.registry().items():
        if target.checks.rpartition(".")[2] + ".py" == module:
            return name
    return None


@dataclass(frozen=True)
class Wanted:
    """The rule for which checks a session runs: the general ones, those of its targets, and the signature
    and latency checks only when their option is given."""

    targets: Sequence[str]
    signed: bool = False
    benchmark: bool = False

    def __call__(self, item: pytest.Item) -> bool:
        t = target_of(item)
        if t is not None and t != "general" and t not in self.targets:
            return False
        if item.get_closest_marker(NEEDS_TRUSTED_KEY) and not self.signed:
            return False  # signatures are checked when a trusted key is given, as with gpg --verify
        # timings are recorded only when asked for: they slow every verify down
        return not (item.get_closest_marker(NEEDS_BENCHMARK) and not self.benchmark)


@dataclass
class Expected:
    """The checks a session should run, per target (``general`` included), collected from the modules."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(
        default_factory=dict
    )  # target -> why a module of it could not be collected
    skipped: dict[str, str] = field(default_factory=dict)  # module file -> module-level skip reason
    owners: dict[str, list[str]] = field(default_factory=dict)  # module file -> the targets it serves


def collection_deviations(config: pytest.Config) -> list[str]:
    """The collection settings of this run that differ from pytest's defaults (``python_functions =
    test_[!p]*``): each can hide checks from the run, so the expected set never uses them."""
    out = []
    for name, default in PYTEST_DEFAULTS.items():
        value = [str(v) for v in config.getini(name)]
        if value != default:
            out.append(f"{name} = {' '.join(value)}")
    return out


@contextlib.contextmanager
def pytest_default_collection(config: pytest.Config) -> Iterator[None]:
    """Collect with pytest's default ``python_files``/``python_classes``/``python_functions`` inside.

    pytest reads them through ``config.getini``, which answers from its ini cache: the defaults are put there
    for the duration and the run's own values restored after. Should a pytest release read them elsewhere,
    :func:`_collect` notices (every ``test*`` function a module defines must be collected) and the expected
    set is an error, never a smaller set."""
    cache = config._inicache  # pytest's getini cache (no public way to collect with other ini values)
    saved = {name: cache[name] for name in PYTEST_DEFAULTS if name in cache}
    cache.update({name: list(value) for name, value in PYTEST_DEFAULTS.items()})
    try:
        yield
    finally:
        for name in PYTEST_DEFAULTS:
            cache.pop(name, None)
        cache.update(saved)


def collect_expected(
    session: pytest.Session, wanted: Wanted, seen: dict[Path, list[pytest.Item]] | None = None
) -> Expected:
    """Collect the check modules of ``general`` and the wanted targets without running anything, with
    pytest's default collection names (:data:`PYTEST_DEFAULTS`), whatever the run's configuration says.

    ``seen``: modules the run itself collected whole, before any deselection (by resolved path): their items
    are reused instead of collected a second time, unless the run's collection settings differ from the
    defaults (then its items may be fewer than the modules hold).
    """
    out = Expected()
    collected: dict[Path, list[pytest.Item]] = {}
    if not collection_deviations(session.config):
        collected.update(seen or {})
    with pytest_default_collection(session.config):
        for target, paths in module_paths(wanted.targets).items():
            ids: set[str] = set()
            for path in paths:
                out.owners.setdefault(path.name, []).append(target)
                if path.resolve() not in collected:
                    collected[path.resolve()] = _collect(session, path, out)
                ids.update(
                    item_id(i) for i in collected[path.resolve()] if wanted(i) and target_of(i) == target
                )
            out.ids[target] = sorted(ids)
    return out


def _collect(session: pytest.Session, path: Path, out: Expected) -> list[pytest.Item]:
    try:  # made as pytest makes it, so plugins that shape modules apply too
        module = session.gethookproxy(path).pytest_pycollect_makemodule(module_path=path, parent=session)
        items = list(_items(module))
        hidden = sorted(defined_checks(path) - {getattr(i, "originalname", i.name) for i in items})
        if hidden:  # pytest's defaults did not take: an error, never a smaller expected set
            out.errors[path.name] = f"collected without {', '.join(hidden)}"
            return []
        return items
    except pytest.skip.Exception as exc:  # a module-level skip: the whole module is not verified
        out.skipped[path.name] = str(exc.msg)
    except Exception as exc:  # an import or collection error in a check module: reported, never hidden
        out.errors[path.name] = _first_line(str(exc)) or type(exc).__name__
    return []


def defined_checks(path: Path) -> set[str]:
    """The test functions a module defines under pytest's default names, read from its source: top-level
    ``test*`` functions and the ``test*`` methods of ``Test*`` classes."""
    import ast

    tree = ast.parse(path.read_bytes(), str(path))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    names = {n.name for n in tree.body if isinstance(n, functions) and n.name.startswith("test")}
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name.startswith("Test"):
            names |= {n.name for n in cls.body if isinstance(n, functions) and n.name.startswith("test")}
    return names


def _items(node: pytest.Collector) -> Iterator[pytest.Item]:
    for child in node.collect():
        if isinstance(child, pytest.Item):
            yield child
        elif isinstance(child, pytest.Collector):
            yield from _items(child)


def whole_modules(config: pytest.Config, items: Sequence[pytest.Item]) -> dict[Path, list[pytest.Item]]:
    """The items of each module, as collected before any deselection, when the run collected modules whole
    (no node-id arguments, no ``--lf``, which filters items while collecting): else nothing to reuse."""
    if config.getoption("lf", None) or any("::" in str(a) for a in config.args):
        return {}
    out: dict[Path, list[pytest.Item]] = {}
    for item in items:
        out.setdefault(item.path.resolve(), []).append(item)
    return out


def describe_selection(config: pytest.Config) -> str:
    """How this run narrowed the checks down, if it did: file or node-id arguments, -k, -m, --deselect,
    --lf, --sw, --maxfail/-x. Empty for a whole-directory run."""
    parts = []
    for arg in config.args:
        path = Path(arg)
        if "::" in arg or path.is_file() or (path.suffix == ".py" and not path.is_dir()):
            parts.append(arg)
    # pytest's own options are always there; --lf and --sw are not with -p no:cacheprovider, -p no:stepwise
    for option, flag in (("keyword", "-k"), ("markexpr", "-m")):
        value = config.getoption(option)
        if value:
            parts.append(f"{flag} {value}")
    for value in config.getoption("deselect") or []:
        parts.append(f"--deselect {value}")
    for option, flag in (("lf", "--lf"), ("stepwise", "--sw"), ("stepwise_skip", "--sw-skip")):
        if config.getoption(option, None):
            parts.append(flag)
    maxfail = config.getoption("maxfail")
    if maxfail:
        parts.append(f"--maxfail {maxfail}")
    return " ".join(parts)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def module_of(nodeid: str) -> str:
    return check_id(nodeid).partition("::")[0]
