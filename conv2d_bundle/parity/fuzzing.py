"""Property checks shared by the targets that run a model here: any valid batch is answered sensibly.

``check_valid_inputs`` draws batches (size 1..max, values normal, zero, large, denormal or mixed) with
hypothesis and asserts, through any runner (numpy batch in, outputs by name out): every output has one row
per window, codes stay in ``[0, num_codes)``, probabilities in [0, 1] with rows summing to 1, and each row of
a batch equals the same window run alone (within the verifier's tolerance). numpy + hypothesis only.

A failing input becomes a regression case (:class:`Counterexamples`): hypothesis's shrunk example is saved
under the bundle's ``validation/counterexamples/`` with the command that replays it, and every later run of
that check replays the saved ones before it draws new examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]
KINDS = ("normal", "zeros", "large", "denormal", "mixed")
#: the batch of the one fixed example per kind that runs before the drawn ones (its first, middle and last rows are
#: compared alone): different small sizes, so that batches other than parity's 1, 7 and 64 are exercised even where
#: nothing is drawn (create's seal-time checks); the denormal one small, its windows cost ~4x in onnxruntime
KIND_BATCHES = {"normal": 16, "zeros": 2, "large": 5, "denormal": 3, "mixed": 12}
#: the largest of them: a fault only above it is for the drawn examples to find
KIND_BATCH = max(KIND_BATCHES.values())
COUNTEREXAMPLES_DIR = "validation/counterexamples"
COUNTEREXAMPLES_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Counterexamples:
    """The saved failing inputs of one fuzz check in one bundle: ``<bundle>/validation/counterexamples/
    <check>.json`` (a list of ``{example, message, input, replay}``, the input itself beside it as ``.npy``).

    They are written where the reports are (``validation/``, which MANIFEST.json does not cover, so saving one
    never unseals the bundle) and, like the reports, not at all where that cannot be written (a read-only
    bundle, a ``validation/`` that is a symlink): the failure then carries the example and the command itself.
    """

    bundle_dir: Path
    check: str  # the check's id: test_onnx.py::test_fuzz_valid_inputs
    replay: str  # the command that runs this check again, replaying the saved examples first

    @property
    def path(self) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.check.replace("::", "-")).strip("-")
        return self.bundle_dir / COUNTEREXAMPLES_DIR / f"{slug}.json"

    def load(self) -> list[dict[str, Any]]:
        """The saved cases (none if there is no file); an unreadable file reads as none, it is only a cache of
        earlier findings and the new fuzzing still runs."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            cases = data["cases"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        return [c for c in cases if isinstance(c, dict) and isinstance(c.get("example"), dict)]

    def save(self, example: Mapping[str, Any], message: str, inputs: np.ndarray) -> str:
        """Add ``example`` (once) and its input; the sentence the failure message ends with."""
        from conv2d_bundle.bundle import atomic
        from conv2d_bundle.bundle.reference import save_npy

        cases = self.load()
        if any(c["example"] == dict(example) for c in cases):
            return f"counterexample saved in {self._shown()}; replay: {self.replay}"
        input_file = f"{self.path.stem}-{len(cases)}.npy"
        case = {"example": dict(example), "message": message, "input": input_file, "replay": self.replay}
        validation = self.bundle_dir / "validation"
        try:
            if validation.is_symlink():  # as the report: never write outside the bundle through a link
                raise OSError(f"{validation} is a symlink")
            atomic.write_bytes(self.path.parent / input_file, save_npy(inputs))
            atomic.write_json(
                self.path,
                {
                    "schema_version": COUNTEREXAMPLES_SCHEMA_VERSION,
                    "check": self.check,
                    "cases": [*cases, case],
                },
            )
        except OSError as exc:
            return f"counterexample not saved ({exc.strerror or exc}): {dict(example)}; replay: {self.replay}"
        return f"counterexample saved in {self._shown()}; replay: {self.replay}"

    def _shown(self) -> str:
        return str(self.path.relative_to(self.bundle_dir))


def fuzz_settings(examples: int) -> Any:
    """Reproducible hypothesis settings: no database, no deadline, derandomized. ``examples`` 0 (the ``seal``
    profile) means the checks here draw nothing; a check of another package that still asks hypothesis with it
    gets one example (hypothesis refuses 0), not an error at create."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max(examples, 1),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def window_batch(batch: int, seed: int, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    if kind == "zeros":
        x[:] = 0
    elif kind == "large":
        x *= np.float32(1e4)
    elif kind == "denormal":
        x *= np.float32(1e-39)  # below float32's smallest normal (1.18e-38)
    elif kind == "mixed":
        x[::2] *= np.float32(1e4)
        x[1::3] = 0
    return x


def check_valid_inputs(
    run: Run,
    spec: Any,
    tolerances: Mapping[str, Any],
    examples: int,
    max_batch: int,
    saved: Counterexamples | None = None,
) -> list[int]:
    """Replay the ``saved`` counterexamples, run the property once per input kind (a fixed batch of
    ``KIND_BATCHES``, at most ``max_batch``: every kind is exercised whatever hypothesis draws), then over ``examples``
    drawn batches (none: hypothesis is not even imported); the batch sizes tried. AssertionError: the first
    counterexample (a drawn one shrunk by hypothesis; a new one is saved), as one line naming the output."""
    shape = tuple(spec.input_shape[1:])
    seen: list[int] = []
    last: dict[str, Any] = {}

    def prop(batch: int, seed: int, kind: str) -> None:
        last.clear()
        last.update(batch=batch, seed=seed, kind=kind)
        x = window_batch(batch, seed, kind, shape)
        out = run(x)
        seen.append(batch)
        for o in spec.outputs:
            _check_rows(o, out[o.name], batch, kind)
        for row in sorted({0, batch // 2, batch - 1}):
            alone = run(x[row : row + 1])
            for o in spec.outputs:
                a, b = alone[o.name][0], out[o.name][row]
                t = tolerances[o.name]
                same = np.array_equal(a, b) if o.is_integer else np.allclose(a, b, atol=t.atol, rtol=t.rtol)
                assert same, f"{o.name}: row {row} of a batch of {batch} differs from the same window alone"

    for case in saved.load() if saved else []:  # regression cases first: a known failure fails at once
        example = case["example"]
        try:
            prop(**example)
        except AssertionError as exc:
            raise AssertionError(
                f"{_one_line(exc)} (saved counterexample {example} in {saved._shown()}, replayed)"  # type: ignore[union-attr]
            ) from None
        except TypeError:  # a case saved by another version of this check: its arguments no longer fit
            continue
    drawn = _drawn(prop, examples, max_batch) if examples > 0 else None  # hypothesis imported outside the try
    try:
        for seed, kind in enumerate(KINDS):
            prop(batch=min(KIND_BATCHES[kind], max_batch), seed=seed, kind=kind)
        if drawn is not None:
            drawn()
    except Exception as exc:  # an assertion, or the runtime refusing a valid batch: both a failing input
        message = (
            _one_line(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {_one_line(exc)}"
        )
        if saved is None or not last:
            raise AssertionError(message) from None
        note = saved.save(last, message, window_batch(last["batch"], last["seed"], last["kind"], shape))
        raise AssertionError(f"{message} ({note})") from None
    return seen


def _drawn(prop: Callable[..., None], examples: int, max_batch: int) -> Callable[[], None]:
    """``prop`` over ``examples`` hypothesis-drawn (batch, seed, kind)."""
    from hypothesis import given
    from hypothesis import strategies as st

    return fuzz_settings(examples)(
        given(batch=st.integers(1, max_batch), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS))(
            prop
        )
    )


def _one_line(exc: BaseException) -> str:
    lines = str(exc).split("\nassert ", 1)[0].splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_rows(o: Any, y: np.ndarray, batch: int, kind: str) -> None:
    assert y.shape[0] == batch, f"{o.name}: {y.shape[0]} rows for a batch of {batch} ({kind})"
    if o.kind == "codes":
        assert ((y >= 0) & (y < o.num_codes)).all(), (
            f"{o.name}: codes outside [0, {o.num_codes}) for {kind} input: {y.min()}..{y.max()}"
        )
    if o.kind == "probabilities":
        assert np.isfinite(y).all() and (y >= 0).all() and (y <= 1).all(), (
            f"{o.name}: values outside [0, 1] for {kind} input"
        )
        worst = float(np.abs(y.sum(axis=-1) - 1).max())
        assert worst <= 1e-5, f"{o.name}: rows sum to 1 +- {worst:.2e} for {kind} input"


def invalid_shapes(shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """Shapes a [N, C, H, W] model must refuse: wrong rank, one axis off (batch 2)."""
    c, h, w = shape
    return [
        ("rank 3", (2, c, h)),
        ("rank 5", (2, c, h, w, 1)),
        ("channels", (2, c + 1, h, w)),
        ("channels", (2, max(c - 1, 1), h, w)),
        ("sensors", (2, c, h + 1, w)),
        ("time steps", (2, c, h, w // 2)),
        ("time steps", (2, c, h, w + 1)),
    ]
