"""Build a model from its config and load weights into it without running untrusted code.

Checkpoints are state dicts read with ``torch.load(weights_only=True)``. A pickled whole module can run
arbitrary code when loaded, so it is refused unless the user passes ``allow_pickle=True``
(``--allow-pickle`` on the CLI) on purpose.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conv2d_bundle.config import ModelSpec
from conv2d_bundle.errors import ModelLoadError
from conv2d_bundle.models.conv2d_fsq import Conv2dFSQ

#: built-in architectures, by the name a config gives in ``model.architecture``
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"conv2d_fsq": Conv2dFSQ}

_NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def _import_target(target: str) -> Callable[..., nn.Module]:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"model.target {target!r}: cannot import it ({exc})") from exc
    if not callable(obj):
        raise ModelLoadError(f"model.target {target!r} is not a class or factory")
    return obj


def build_model(spec: ModelSpec) -> nn.Module:
    """An untrained instance of the architecture the config names."""
    factory = _import_target(spec.target) if spec.target else ARCHITECTURES[str(spec.architecture)]
    try:
        model = factory(**spec.kwargs)
    except TypeError as exc:
        raise ModelLoadError(f"model.kwargs do not fit {spec.display_name}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{spec.display_name} did not return a torch.nn.Module")
    return model


def _checkpoint_format_problem(path: Path) -> str | None:
    """Why ``path`` is not a PyTorch checkpoint at all, or None when it looks like one: ``torch.save`` writes a
    zip archive (since torch 1.6) or, in the legacy format, a pickle stream (protocol 2 unless asked otherwise).
    Anything else is not worth unpickling, and is not a reason to suggest ``--allow-pickle``."""
    with open(path, "rb") as f:
        head = f.read(2)
    if not head:
        return "the file is empty"
    if zipfile.is_zipfile(path) or (head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL):
        return None
    return "torch.save writes a zip archive (or, in its legacy format, a pickle), and this file is neither"


def load_checkpoint(path: Path, *, allow_pickle: bool = False) -> Mapping[str, torch.Tensor] | nn.Module:
    """The state dict in ``path`` (or, with ``allow_pickle``, whatever module it pickled)."""
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    try:
        problem = _checkpoint_format_problem(path)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if problem:
        raise ModelLoadError(f"{path} is not a PyTorch checkpoint: {problem}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not allow_pickle:
            raise ModelLoadError(
                f"{path} is not a plain state dict (it needs pickle, which can run code when loaded); "
                "save model.state_dict() instead, or pass --allow-pickle if you trust this file"
            ) from exc
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as inner:  # any failure of an arbitrary pickle is a load error
            raise ModelLoadError(f"{path}: cannot unpickle: {inner}") from inner
    except KeyError as exc:  # the unpickler's memo lookup: a pickle header followed by junk
        raise ModelLoadError(f"{path}: not a readable torch checkpoint (a corrupt pickle stream)") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from exc
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        for key in _NESTED_STATE_KEYS:
            nested = obj.get(key)
            if (
                isinstance(nested, Mapping)
                and nested
                and all(isinstance(v, torch.Tensor) for v in nested.values())
            ):
                return nested
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ModelLoadError(f"{path}: expected a state dict of tensors, found {type(obj).__name__}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model(spec: ModelSpec, checkpoint: Path, *, allow_pickle: bool = False) -> nn.Module:
    """Build the configured architecture and load the checkpoint into it, strictly, in eval mode."""
    loaded = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
    model = build_model(spec)
    state = loaded.state_dict() if isinstance(loaded, nn.Module) else loaded
    apply_state_dict(model, state, source=str(checkpoint))
    return model.eval()


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """``load_state_dict(strict=True)`` with the missing/unexpected keys named in one message."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_abbrev(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_abbrev(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_abbrev(shapes)}")
        raise ModelLoadError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(dict(state), strict=True)
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelLoadError(f"{source}: non-finite weights (NaN/inf) in {_abbrev(bad)}")


def _abbrev(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A digest of the weights themselves (name, dtype, shape, bytes), for models given as objects."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class OutputsInConfigOrder(nn.Module):
    """The user's model with its outputs as a tuple in the config's order, whatever ``forward`` returns.

    A ``forward`` may return one tensor, a tuple or list (taken by position), a dict (taken by the configured
    names, in any key order) or a namedtuple (by field name when the fields are the configured names, else
    by position). Every exporter and the golden reference see this one order, so ``outputs[0]`` of every
    format is the config's first output and carries its name.
    """

    def __init__(self, inner: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.names = names
        if callable(getattr(inner, "device_forward", None)):  # the Hailo split keeps working through it
            self.device_forward = inner.device_forward
        if callable(getattr(inner, "rounding_latent", None)):  # and the golden set's boundary screen
            self.rounding_latent = inner.rounding_latent

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return in_config_order(self.inner(x), self.names)


def in_config_order(result: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    if isinstance(result, torch.Tensor):
        return (result,)
    if isinstance(result, Mapping):
        missing = [n for n in names if n not in result]
        if missing:
            raise ModelLoadError(f"the model's outputs {sorted(result)} lack the configured {missing}")
        return tuple(result[n] for n in names)
    fields = getattr(result, "_fields", None)  # a namedtuple
    if fields is not None and set(names) <= set(fields):
        return tuple(getattr(result, n) for n in names)
    return tuple(result)


def outputs_in_config_order(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Wrap ``model`` (already in eval mode) so that it returns :class:`OutputsInConfigOrder`'s tuple."""
    return OutputsInConfigOrder(model, tuple(spec.output_names)).eval()
