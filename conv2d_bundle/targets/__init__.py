"""Deployment targets: one package per target, one small interface, one registry.

A target (``conv2d_bundle/targets/<name>/``) holds its exporter, its **runner** (load the exported model, run
inputs, return named outputs), its structural checks (a pytest module), its readers and its own CLI commands.
Targets are found through the entry-point group ``conv2d_bundle.targets`` (the built-in ones register there
too), so a separate package adds a target with one entry point, as pytest plugins do (``pytest11``)::

    [project.entry-points."conv2d_bundle.targets"]
    tflite = "my_package.tflite_target:TARGET"

Everything here is cheap to import: a target's heavy dependencies (torch, onnxruntime, coremltools) are
imported inside the methods that need them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from conv2d_bundle.errors import BundleError


class Located(Protocol):
    """Where a failing export left the source model (the ONNX target's is
    :class:`conv2d_bundle.targets.onnx.divergence.Divergence`): one line for the failure message, and the
    figures for the report."""

    def describe(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


log = logging.getLogger(__name__)
GROUP = "conv2d_bundle.targets"
#: the ``formats`` entry status of a target a create did not build (never asked for, or not installed there)
NOT_REQUESTED = "not_requested"
#: the targets this package ships, in the order they are listed (entry points may add more)
BUILTIN = {
    "onnx": "conv2d_bundle.targets.onnx:TARGET",
    "ios": "conv2d_bundle.targets.ios:TARGET",
    "hailo": "conv2d_bundle.targets.hailo:TARGET",
}
#: what runs a target's exported model: a batch of inputs in, the outputs by name out
Runner = Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True)
class Capability:
    """What this host can do with a target's runner: execute it, or why not (the skip reason of its parity)."""

    executes: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"executes": self.executes, "reason": self.reason}


EXECUTES_HERE = Capability(True, "executes here")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (a finder that refuses it: not)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Target:
    """A deployment target. Subclasses set the attributes and implement the methods they need.

    - ``name``: the ``--target`` name; ``format``: the format name in ``--formats`` and ``metadata.json``.
    - ``checks``: the dotted name of its structural checks, a pytest module named ``test_<name>.py``.
    - ``extra``: the pip extra its exporter needs (named in the error when it is missing).
    """

    name: str = ""
    format: str = ""
    title: str = ""
    checks: str = ""
    extra: str = ""
    #: how the runner runs, in a few words (for ``conv2d pack targets`` and the parity failure messages)
    runs_as: str = ""
    #: built by a ``create`` that names no formats (where exportable); else only when asked for by name
    default: bool = True

    # -- exporting ----------------------------------------------------------------------------------
    def exportable(self) -> str | None:
        """None when this installation can export the format; else why not (a missing extra)."""
        return None

    def export(self, ctx: Any) -> dict[str, Any]:
        """Write the format into ``ctx.staging``; return its ``metadata.json`` ``formats`` entry."""
        raise NotImplementedError

    # -- verifying ----------------------------------------------------------------------------------
    def missing(self, bundle: Any) -> str | None:
        """None when ``bundle`` holds this target's format; else what is missing and why."""
        info = bundle.format_info(self.format)
        if not info:
            return f"the bundle was built without {self.format} (metadata.json has no formats.{self.format})"
        if info.get("status") == NOT_REQUESTED:
            return f"the bundle was built without {self.format} ({info.get('reason', 'not asked for')})"
        if info.get("status") != "built":
            return f"formats.{self.format} is {info.get('status')!r}: {info.get('reason', 'no reason given')}"
        if not bundle.path(str(info.get("file", ""))).exists():
            return f"formats.{self.format} says built, but {info.get('file')} is gone"
        return None

    def capability(self) -> Capability:
        """Whether this host can execute the runner (parity runs) or not, and why."""
        return EXECUTES_HERE

    def runner(self, bundle: Any) -> Runner:
        """Load the exported model; the returned callable runs a batch and returns the outputs by name."""
        raise NotImplementedError

    def locate_divergence(self, bundle: Any, inputs: Any, policy: Any) -> Located | None:
        """Where the export's values first leave the source model's on ``inputs`` (the first rows of the golden
        inputs), tap by tap (``reference/taps.npz``); None when this target cannot expose intermediate tensors.
        A failing parity item adds it to its message. Raises BundleError when the bundle lacks what it needs."""
        return None

    def guide(self, meta: Mapping[str, Any]) -> str:
        """The deployment guide's section for this format, written for the bundled model (markdown)."""
        return ""

    def cli_commands(self) -> Sequence[Any]:
        """``click`` commands a target of another package adds under ``conv2d pack`` (the built-in targets'
        commands, such as hailo's ``attach-hef``, are in ``conv2d_bundle/cli/``: the CLI is the top layer)."""
        return ()

    # -- derived ------------------------------------------------------------------------------------
    @property
    def check_module_path(self) -> Path:
        spec = importlib.util.find_spec(self.checks)
        if spec is None or spec.origin is None:
            raise BundleError(f"target {self.name}: its checks module {self.checks} is not importable")
        return Path(spec.origin)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "title": self.title,
            "checks": self.checks,
            "runs_as": self.runs_as,
            "extra": self.extra,
        }


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Target]:
    """Every installed target by name: the built-in ones first, then those other packages register."""
    found: dict[str, str] = dict(BUILTIN)
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        found.setdefault(ep.name, ep.value)
    out: dict[str, Target] = {}
    for name, ref in found.items():
        try:
            target = _load(ref)
        except Exception as exc:  # a broken third-party target must not take the others down with it
            log.warning("target %s (%s) cannot be loaded: %s", name, ref, exc)
            continue
        if target.name != name:
            log.warning("target entry point %s names a target called %r: skipped", name, target.name)
            continue
        out[name] = target
    return out


def _load(ref: str) -> Target:
    module, _, attr = ref.partition(":")
    target = getattr(importlib.import_module(module), attr)
    if not isinstance(target, Target):
        raise TypeError(f"{ref} is not a conv2d_bundle.targets.Target")
    return target


def target_names() -> tuple[str, ...]:
    return tuple(registry())


def get_target(name: str) -> Target:
    try:
        return registry()[name]
    except KeyError:
        raise BundleError(f"unknown target {name!r} (known: {', '.join(target_names())})") from None


def by_format(fmt: str) -> Target:
    """The target that exports format ``fmt`` (``coreml`` -> the ``ios`` target)."""
    found = next((t for t in registry().values() if t.format == fmt), None)
    if found is None:
        raise BundleError(f"unknown format {fmt!r} (known: {', '.join(format_names())})")
    return found


def format_names() -> tuple[str, ...]:
    return tuple(t.format for t in registry().values())


def parse_target_list(value: str) -> list[str]:
    """``onnx``, ``ios,hailo``, ``all`` or ``general`` -> the names, each known (BundleError otherwise)."""
    names = list(dict.fromkeys(v.strip() for v in str(value).split(",") if v.strip()))
    known = ("general", *target_names(), "all")
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise BundleError(f"unknown target {', '.join(unknown) or repr(value)} (known: {', '.join(known)})")
    return names


def selected(names: Sequence[str]) -> list[str]:
    """The targets whose checks run besides the general ones, in registry order (``all``: every one)."""
    if "all" in names:
        return list(target_names())
    return [t for t in target_names() if t in names]
