"""What a run of the bundle checks should cover: which checks belong to which target, which of them a
session wants, and the full set it should have run, whatever the command line selected.

The full set is collected independently of the run, from the checks package itself, so that a run that
selected a file, node ids, ``-k``/``-m``, ``--deselect`` or ``--lf`` (or that pytest-xdist distributed, with
nothing collected on the controller) is measured against everything the target has, not against what
happened to be collected.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: the marker that says which target a check belongs to (namespaced: other suites may have a ``target``)
MARKER = "conv2d_target"
NEEDS_TRUSTED_KEY = "conv2d_needs_trusted_key"
NEEDS_BENCHMARK = "conv2d_needs_benchmark"
CHECKS_DIR = Path(__file__).parent / "checks"
TARGETS = ("onnx", "ios", "hailo")
#: the check module of each target, in the checks package
CHECK_MODULES = {"general": "test_general.py", **{t: f"test_{t}.py" for t in TARGETS}}


def check_id(nodeid: str) -> str:
    """``test_onnx.py::test_parity[confidence-7]``: the file name relative to the checks folder, whatever the cwd."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def item_id(item: pytest.Item) -> str:
    """:func:`check_id` of an item, also for one collected from outside the rootdir (whose nodeid is odd)."""
    chain = item.listchain()
    module = max(i for i, node in enumerate(chain) if isinstance(node, pytest.Module))
    return "::".join([item.path.name, *(node.name for node in chain[module + 1 :])])


def target_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(MARKER)
    return str(marker.args[0]) if marker and marker.args else None


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
    """The checks a session should run, per target (``general`` included), collected from the package."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # module file -> why it could not be collected
    skipped: dict[str, str] = field(default_factory=dict)  # module file -> module-level skip reason


def collect_expected(session: pytest.Session, wanted: Wanted) -> Expected:
    """Collect the checks modules of ``general`` and the wanted targets without running anything."""
    out = Expected()
    for target in ("general", *wanted.targets):
        name = CHECK_MODULES[target]
        ids: list[str] = []
        try:
            path = CHECKS_DIR / name  # made as pytest makes it, so plugins that shape modules apply too
            module = session.gethookproxy(path).pytest_pycollect_makemodule(module_path=path, parent=session)
            ids = sorted(item_id(i) for i in _items(module) if wanted(i) and target_of(i) == target)
        except pytest.skip.Exception as exc:  # a module-level skip: the whole module is not verified
            out.skipped[name] = str(exc.msg)
        except Exception as exc:  # an import or collection error in a check module: reported, never hidden
            out.errors[name] = _first_line(str(exc)) or type(exc).__name__
        out.ids[target] = ids
    return out


def _items(node: pytest.Collector) -> Iterator[pytest.Item]:
    for child in node.collect():
        if isinstance(child, pytest.Item):
            yield child
        elif isinstance(child, pytest.Collector):
            yield from _items(child)


def describe_selection(config: pytest.Config) -> str:
    """How this run narrowed the checks down, if it did: file or node-id arguments, -k, -m, --deselect,
    --lf, --sw, --maxfail/-x. Empty for a whole-directory run."""
    parts = []
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        if "::" in arg or path.is_file() or (path.suffix == ".py" and not path.is_dir()):
            parts.append(arg)
    for option, flag in (("keyword", "-k"), ("markexpr", "-m")):
        value = config.getoption(option, None)
        if value:
            parts.append(f"{flag} {value}")
    for value in config.getoption("deselect", None) or []:
        parts.append(f"--deselect {value}")
    for option, flag in (("lf", "--lf"), ("stepwise", "--sw"), ("stepwise_skip", "--sw-skip")):
        if config.getoption(option, None):
            parts.append(flag)
    maxfail = config.getoption("maxfail", 0)
    if maxfail:
        parts.append(f"--maxfail {maxfail}")
    return " ".join(parts)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1]


def known_module(nodeid: str) -> str | None:
    """The target whose check module ``nodeid`` is in (the package's or a re-export of the same name)."""
    name = module_of(nodeid)
    return next((t for t, m in CHECK_MODULES.items() if m == name), None)
