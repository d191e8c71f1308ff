"""Property checks shared by the targets that run a model here: any valid batch is answered sensibly.

``check_valid_inputs`` draws batches (size 1..max, values normal, zero, large, denormal or mixed) with
hypothesis and asserts, through any runner (numpy batch in, outputs by name out): every output has one row
per window, codes stay in ``[0, num_codes)``, probabilities in [0, 1] with rows summing to 1, and each row of
a batch equals the same window run alone (within the verifier's tolerance). numpy + hypothesis only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]
KINDS = ("normal", "zeros", "large", "denormal", "mixed")


def fuzz_settings(examples: int) -> Any:
    """Reproducible hypothesis settings: no database, no deadline, derandomized."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=examples,
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
    run: Run, spec: Any, tolerances: Mapping[str, Any], examples: int, max_batch: int
) -> list[int]:
    """Run the property over ``examples`` drawn batches; the batch sizes tried. AssertionError: the first
    counterexample (hypothesis shrinks it), as one line naming the output."""
    from hypothesis import given
    from hypothesis import strategies as st

    shape = tuple(spec.input_shape[1:])
    seen: list[int] = []

    @fuzz_settings(examples)
    @given(batch=st.integers(1, max_batch), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS))
    def prop(batch: int, seed: int, kind: str) -> None:
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

    try:
        prop()
    except AssertionError as exc:
        raise AssertionError(str(exc).split("\nassert ", 1)[0].splitlines()[0]) from None
    return seen


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
