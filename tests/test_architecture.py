"""ARCHITECTURE.md kept true: imports run one way through the layers, and no module imports itself back.

Every import of ``conv2d_bundle`` counts: at module level, inside a function (a lazy import is still an
arrow), and under ``if TYPE_CHECKING:`` (a type is a dependency too). Read with ``ast``, nothing imported.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "conv2d_bundle"

#: lowest first; a module may import its own layer and the layers below it, never one above
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors", ("conv2d_bundle.errors",)),
    ("target contract", ("conv2d_bundle.targets",)),  # the package's __init__ only: Target and its registry
    ("config", ("conv2d_bundle.config",)),
    ("models", ("conv2d_bundle.models",)),
    ("bundle", ("conv2d_bundle.bundle",)),
    ("oci", ("conv2d_bundle.oci",)),
    ("parity", ("conv2d_bundle.parity",)),
    ("targets", ("conv2d_bundle.targets.",)),  # every target's package
    ("verify", ("conv2d_bundle.verify", "conv2d_bundle.checks")),
    ("lifecycle", ("conv2d_bundle.lifecycle",)),
    ("cli", ("conv2d_bundle.cli",)),
    # the names a module had before the move, kept for users: aliases of the modules they name
    ("moved names", ("conv2d_bundle.pytest_plugin", "conv2d_bundle.validation")),
)
#: the package's root: the public API facade (it imports nothing at run time: every name is loaded on first
#: use) and ``__version__``, which any layer may read
FACADE = "conv2d_bundle"


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``: the longest prefix that names it wins."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = (
                module.startswith(prefix)
                if prefix.endswith(".")
                else (module == prefix or module.startswith(prefix + "."))
            )
            if matches and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to ARCHITECTURE.md")
    return best[0]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported conv2d_bundle module, line) for every import in ``path``: ``from a.b import c`` is module
    ``a.b.c`` when that is a module, else ``a.b``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == FACADE:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source.split(".")[0] != FACADE:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield (sub if sub in known else source), node.lineno


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}, for every module under ``root``."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        edges: dict[str, int] = {}
        for target, line in imports(path, module, set(files)):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for module, edges in graph.items():
        if module == FACADE:
            continue
        for target, line in edges.items():
            if target == FACADE or module.startswith(target + "."):
                continue  # __version__; a package's own __init__, which Python runs first anyway
            if layer_of(target) > layer_of(module):
                out.append(
                    f"{module}:{line} imports {target}: {LAYERS[layer_of(module)][0]} -> "
                    f"{LAYERS[layer_of(target)][0]} runs up"
                )
    return out


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected set of modules larger than one (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in graph or w == FACADE or v.startswith(w + "."):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_run_down_the_layers() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 80  # the whole package was read
    assert upward_imports(graph) == []


def test_no_import_circle() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_every_module_has_a_layer() -> None:
    for module in import_graph(PACKAGE):
        if module != FACADE:
            layer_of(module)


def test_the_top_level_holds_few_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "config.py", "errors.py", "pytest_plugin.py", "validation.py"]


def test_the_facade_imports_nothing_at_run_time() -> None:
    """``import conv2d_bundle`` stays cheap: the public names load on first use."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    eager = [
        ast.unparse(node)
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            name.startswith(FACADE)
            for name in [getattr(node, "module", None) or ""] + [a.name for a in node.names]
        )
    ]
    assert eager == []


def test_architecture_md_names_every_room() -> None:
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rooms = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert [room for room in rooms if f"`{room}/`" not in text] == []
    for name, _ in LAYERS:
        assert name in text


# ------------------------------------------------------------------------------------------- the test's test


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "conv2d_bundle"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


LAYERED = {
    "__init__.py": "",
    "errors.py": "",
    "bundle/__init__.py": "",
    "bundle/store.py": "from conv2d_bundle.errors import BundleError\n",
    "verify/__init__.py": "",
    "verify/plugin.py": "from conv2d_bundle.bundle import store\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    graph = import_graph(_tree(tmp_path, LAYERED))
    assert graph["conv2d_bundle.verify.plugin"] == {"conv2d_bundle.bundle.store": 1}
    assert upward_imports(graph) == [] and cycles(graph) == []


@pytest.mark.parametrize(
    "planted",
    [
        "from conv2d_bundle.verify.plugin import x\n",
        "def lazy():\n    from conv2d_bundle.verify import plugin\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from conv2d_bundle.verify.plugin import X\n",
        "import conv2d_bundle.verify.plugin\n",
        "from ..verify import plugin\n",
    ],
    ids=["from", "lazy", "type-only", "import", "relative"],
)
def test_a_planted_upward_import_fails(tmp_path: Path, planted: str) -> None:
    root = _tree(tmp_path, {**LAYERED, "bundle/store.py": planted})
    problems = upward_imports(import_graph(root))
    assert len(problems) == 1
    assert problems[0].startswith("conv2d_bundle.bundle.store:")
    assert "imports conv2d_bundle.verify.plugin: bundle -> verify runs up" in problems[0]


def test_a_planted_circle_fails(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            **LAYERED,
            "bundle/store.py": "from conv2d_bundle.bundle import archive\n",
            "bundle/archive.py": "def f():\n    from conv2d_bundle.bundle.store import Bundle\n",
        },
    )
    assert cycles(import_graph(root)) == [["conv2d_bundle.bundle.archive", "conv2d_bundle.bundle.store"]]


def test_a_module_outside_every_layer_is_named(tmp_path: Path) -> None:
    graph = import_graph(
        _tree(tmp_path, {**LAYERED, "newroom/thing.py": "from conv2d_bundle import errors\n"})
    )
    with pytest.raises(AssertionError, match=r"conv2d_bundle\.newroom\.thing is in no layer"):
        upward_imports(graph)


def test_readme_shows_the_same_rooms() -> None:
    """README's layout block and ARCHITECTURE.md describe one layout: the package's."""
    text = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    shown = {m.split("/")[0] for m in re.findall(r"^  ([a-z_]+/)", block, re.M)}
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert shown == rooms
    modules = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py", "pytest_plugin.py", "validation.py"}
    assert {m for m in modules if f"  {m} " not in block} == set()
