"""Taps: the source model's intermediate activations on the golden inputs, recorded when a bundle is created.

When an export's outputs drift from the golden ones, the taps say *where* it started: an export that can
expose intermediate tensors (ONNX) is run again with the tapped tensors as extra outputs and compared tap by
tap (:mod:`conv2d_bundle.targets.onnx.divergence`). A tap is a module's output, named by its path in the user's model
(``encoder``, ``encoder.0``); by default every top-level child module the forward pass calls, in the order it
calls them. ``export.reference.taps`` in the config names others.

Files (both covered by MANIFEST.json and so by the bundle's hash like every reference file):
``reference/taps.npz`` the activations by tap name; ``reference/taps.json`` the taps in execution order with
their shapes and dtypes. Each export that maps taps records its own mapping (tap -> tensor name) in its
``metadata.json`` ``formats`` entry. torch is imported here: only ``create`` uses this module.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conv2d_bundle.errors import ConfigError

TAPS_FILE = "reference/taps.npz"
TAPS_INDEX = "reference/taps.json"
TAPS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Taps:
    """Tap names in execution order, their activations on the golden inputs, and the tapped model's root."""

    names: tuple[str, ...]
    values: Mapping[str, np.ndarray]

    def index(self) -> dict[str, Any]:
        """``reference/taps.json``: what was tapped, in order, so a reader needs no torch to know it."""
        return {
            "schema_version": TAPS_SCHEMA_VERSION,
            "taps": [
                {"name": n, "shape": list(self.values[n].shape), "dtype": str(self.values[n].dtype)}
                for n in self.names
            ],
        }


def tapped_root(model: Any) -> Any:
    """The user's own model: the module tap names are relative to (``OutputsInConfigOrder`` wraps it)."""
    return getattr(model, "inner", model)


def record_taps(model: Any, inputs: np.ndarray, names: Sequence[str] | None = None) -> Taps:
    """Run ``model`` on ``inputs`` and keep the tapped modules' outputs (see :class:`TapRecorder`)."""
    import torch

    with TapRecorder(model, names) as recorder, torch.no_grad():
        model(torch.from_numpy(inputs))
    return recorder.taps()


class TapRecorder:
    """Forward hooks on the tapped modules for the length of a ``with`` block: the golden forward pass records
    the taps too, so they cost no second pass over the golden inputs.

    ``names`` None: every top-level child that the forward pass calls and that returns one tensor (a child
    only some method uses, such as the built-in model's ``fsq``, is not a tap). Named taps must exist
    (ConfigError with the closest name), be called, and return a tensor. A module called twice keeps its
    first call's output: that is the first place its value exists in the graph.
    """

    def __init__(self, model: Any, names: Sequence[str] | None = None) -> None:
        root = tapped_root(model)
        self.modules = dict(root.named_modules())
        self.explicit = names is not None
        self.wanted = list(names) if names is not None else [n for n, _ in root.named_children()]
        unknown = [n for n in self.wanted if n not in self.modules or not n]
        if unknown:
            known = [n for n in self.modules if n]
            problems = []
            for n in unknown:
                close = difflib.get_close_matches(n, known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}?" if close else f"modules: {', '.join(known[:12])}"
                problems.append(f"export.reference.taps: no module {n!r} in the model ({hint})")
            raise ConfigError("; ".join(problems))
        self.seen: dict[str, Any] = {}
        self.order: list[str] = []
        self.handles: list[Any] = []

    def _hook_for(self, name: str) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            if name not in self.seen:
                self.seen[name] = output
                self.order.append(name)

        return hook

    def __enter__(self) -> TapRecorder:
        self.handles = [
            self.modules[n].register_forward_hook(self._hook_for(n)) for n in dict.fromkeys(self.wanted)
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def taps(self) -> Taps:
        """What the forward pass in the block gave; ConfigError for a named tap it did not give."""
        import torch

        values: dict[str, np.ndarray] = {}
        problems = []
        for n in self.order:
            out = self.seen[n]
            if isinstance(out, torch.Tensor):
                values[n] = np.ascontiguousarray(out.detach().cpu().numpy())
            elif self.explicit:
                problems.append(f"export.reference.taps: {n} returns {type(out).__name__}, not one tensor")
        if self.explicit:
            problems += [
                f"export.reference.taps: {n} is never called by the model's forward"
                for n in self.wanted
                if n not in self.seen
            ]
        if problems:
            raise ConfigError("; ".join(problems))
        return Taps(tuple(n for n in self.order if n in values), values)
