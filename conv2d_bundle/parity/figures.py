"""Compare an export's outputs with the golden ones, and say by how much they differ (numpy only).

Every comparison carries the figures people compare exports by, passed or not: max / mean / p99 absolute and
relative error, cosine similarity, PSNR and SNR in dB, and for class outputs (``kind: probabilities``) the
top-1 agreement (``kind: logits`` too), for code outputs (``kind: codes``) the code agreement. Only the tolerance gates; the figures
are evidence for the report.

PSNR = 20 log10((max|ref| + 1e-5) / (RMSE + 1e-10)), as Qualcomm AI Hub computes it;
SNR = 10 log10(mean(ref^2) / mean((out - ref)^2)), both guarded against division by zero by 1e-20.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from conv2d_bundle.parity.tolerance import Tolerance, TolerancePolicy


@dataclass(frozen=True)
class ParityStats:
    output: str
    passed: bool
    shape: tuple[int, ...]
    expected_shape: tuple[int, ...]
    integer: bool
    mismatches: int  # integer outputs: elements that differ; floats: elements outside tolerance
    total: int
    max_abs_error: float
    max_rel_error: float
    p99_abs_error: float
    cosine_similarity: float
    atol: float
    rtol: float
    min_atol_to_pass: float  # with rtol fixed, the smallest atol that would have passed
    mean_abs_error: float = float("nan")
    mean_rel_error: float = float("nan")
    p99_rel_error: float = float("nan")
    psnr_db: float = float("nan")
    snr_db: float = float("nan")
    #: "top1" (class outputs: same argmax) or "codes" (same code), and the fraction of agreement
    agreement_kind: str | None = None
    agreement: float | None = None
    #: the agreement the best constant answer gets on the same golden values (the majority code, or the
    #: majority class), and that answer: an agreement no higher than this is no evidence of a working export
    constant_agreement: float | None = None
    constant_answer: int | None = None

    def no_better_than_constant(self) -> str | None:
        """Why the agreement figure says nothing (None: it beats every constant answer)."""
        if (
            self.agreement is None
            or self.constant_agreement is None
            or self.agreement > self.constant_agreement
        ):
            return None
        what = "class" if self.agreement_kind == "top1" else "code"
        return (
            f"{self.output}: {'top-1' if what == 'class' else 'code'} agreement {self.agreement:.1%} is no better "
            f"than answering the constant {what} {self.constant_answer} ({self.constant_agreement:.1%} of the golden "
            f"{'windows' if what == 'class' else 'values'})"
        )

    def failure(self) -> str:
        """What a failed comparison says: :meth:`describe`, and, where the agreement is no better than the best
        constant answer, that too (a dead export's 95% code agreement on a set that is 95% one code is no 95%)."""
        constant = self.no_better_than_constant()
        return self.describe() + (f"; {constant.removeprefix(f'{self.output}: ')}" if constant else "")

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: infinite or NaN figures become strings ("inf", "nan"), as JSON has no such numbers."""
        d = asdict(self)
        d["shape"], d["expected_shape"] = list(self.shape), list(self.expected_shape)
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    def describe(self) -> str:
        if self.shape != self.expected_shape:
            return f"{self.output}: shape {list(self.shape)} != expected {list(self.expected_shape)}"
        if self.total == 0:
            return f"{self.output}: nothing compared (0 values, shape {list(self.shape)})"
        what = {"top1": "top-1", "codes": "code"}.get(self.agreement_kind or "")
        agree = "" if self.agreement is None else f", {what} agreement {self.agreement:.1%}"
        if self.integer:
            return (
                f"{self.output}: {self.mismatches}/{self.total} values differ "
                f"(max abs error {self.max_abs_error:g}{agree})"
            )
        return (
            f"{self.output}: {self.mismatches}/{self.total} outside atol={self.atol:g} rtol={self.rtol:g}; "
            f"max abs {self.max_abs_error:.3g}, max rel {self.max_rel_error:.3g}, p99 abs {self.p99_abs_error:.3g}, "
            f"cosine {self.cosine_similarity:.9f}, PSNR {self.psnr_db:.1f} dB{agree}; "
            f"would pass with atol >= {self.min_atol_to_pass:.3g}"
        )


def compare(
    name: str,
    actual: Any,
    expected: Any,
    *,
    integer: bool,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    kind: str = "tensor",
) -> ParityStats:
    """Integer outputs must match exactly; float outputs within ``|a - e| <= atol + rtol * |e|``.
    ``kind`` (the output's config kind) adds the top-1 or code agreement to the figures."""
    a, e = np.asarray(actual), np.asarray(expected)
    shape, expected_shape = tuple(int(x) for x in a.shape), tuple(int(x) for x in e.shape)
    if shape != expected_shape:
        return ParityStats(
            name,
            False,
            shape,
            expected_shape,
            integer,
            int(e.size),
            int(e.size),
            float("inf"),
            float("inf"),
            float("inf"),
            0.0,
            atol,
            rtol,
            float("inf"),
        )
    af, ef = a.astype(np.float64).ravel(), e.astype(np.float64).ravel()
    if af.size == 0:  # empty evidence is not a pass: nothing was compared
        return ParityStats(
            name, False, shape, expected_shape, integer, 0, 0, 0.0, 0.0, 0.0, 0.0, atol, rtol, 0.0
        )
    with np.errstate(all="ignore"):  # infinities and NaN are judged below, not warned about
        stats = _compare_values(name, af, ef, shape, integer, atol, rtol)
    return replace(stats, **_agreement(kind, a, e))


def _agreement(kind: str, a: np.ndarray, e: np.ndarray) -> dict[str, Any]:
    if kind == "codes":
        return {"agreement_kind": "codes", "agreement": float(np.mean(a == e)), **_majority(e)}
    if kind in ("probabilities", "logits") and a.ndim >= 1:
        expected = np.argmax(e, axis=-1)
        same = np.argmax(a, axis=-1) == expected
        return {"agreement_kind": "top1", "agreement": float(np.mean(same)), **_majority(expected)}
    return {}


def _majority(values: np.ndarray) -> dict[str, Any]:
    """The best constant answer for ``values``: the most frequent one, and the share it would get right."""
    found, counts = np.unique(values.ravel(), return_counts=True)
    if counts.size == 0:
        return {}
    best = int(np.argmax(counts))
    answer = found[best]
    return {
        "constant_agreement": float(counts[best] / values.size),
        "constant_answer": int(answer) if np.isfinite(answer) and float(answer).is_integer() else None,
    }


def _compare_values(
    name: str, af: np.ndarray, ef: np.ndarray, shape: tuple[int, ...], integer: bool, atol: float, rtol: float
) -> ParityStats:
    nan = np.isnan(af) | np.isnan(ef)  # NaN on either side never matches, not even NaN against NaN
    err = np.where(nan, np.inf, np.where(af == ef, 0.0, np.abs(af - ef)))
    rel = err / np.maximum(np.abs(ef), np.finfo(np.float32).tiny)
    if integer:
        mismatches = int(np.count_nonzero((af != ef) | nan))
        need = float(err.max())
    else:
        over = np.where(nan, np.inf, err - rtol * np.abs(np.nan_to_num(ef)))
        mismatches = int(np.count_nonzero(over > atol))
        need = float(max(over.max(), 0.0))
    diff = np.where(nan, np.nan, af - ef)
    mse = float(np.mean(diff * diff))
    signal = float(np.mean(ef * ef))
    norm = float(np.linalg.norm(af) * np.linalg.norm(ef))
    cosine = float(np.dot(af, ef) / norm) if norm > 0 and np.isfinite(norm) else float(np.array_equal(af, ef))
    return ParityStats(
        output=name,
        passed=mismatches == 0,
        shape=shape,
        expected_shape=shape,
        integer=integer,
        mismatches=mismatches,
        total=int(af.size),
        max_abs_error=float(err.max()),
        max_rel_error=float(rel.max()),
        p99_abs_error=float(np.percentile(err, 99)),
        cosine_similarity=cosine,
        atol=atol,
        rtol=rtol,
        min_atol_to_pass=need,
        mean_abs_error=float(err.mean()),
        mean_rel_error=float(rel.mean()),
        p99_rel_error=float(np.percentile(rel, 99)),
        psnr_db=float(20 * np.log10((np.max(np.abs(ef)) + 1e-5) / (math.sqrt(mse) + 1e-10))),
        snr_db=float(10 * np.log10((signal + 1e-20) / (mse + 1e-20))),
    )


def compare_output(
    spec: Any, actual: Any, expected: Any, policy: TolerancePolicy | None = None
) -> tuple[Tolerance, ParityStats]:
    """One output of an export against its golden values under the verifier's tolerance policy: the one
    comparison every parity check (and every exporter's own check) makes. A bundle asking for a looser
    tolerance than the policy's cap gets ``tolerance.violation`` (and the comparison at the cap)."""
    tolerance = (policy or TolerancePolicy()).resolve(spec)
    stats = compare(
        spec.name,
        actual,
        expected,
        integer=tolerance.exact,
        atol=tolerance.atol,
        rtol=tolerance.rtol,
        kind=spec.kind,
    )
    return tolerance, stats


def check_outputs(
    got: Mapping[str, Any], expected: Mapping[str, Any], specs: Sequence[Any], what: str
) -> dict[str, dict[str, Any]]:
    """Every configured output of a runner's result against the golden outputs (the exporters' own check
    before sealing); ParityError listing every output that is missing, loose or off."""
    from conv2d_bundle.errors import ParityError

    figures, failed = {}, []
    for spec in specs:
        if spec.name not in got:
            failed.append(f"{spec.name}: not produced (has {sorted(got)})")
            continue
        tolerance, stats = compare_output(spec, got[spec.name], expected[spec.name])
        figures[spec.name] = {k: stats.as_dict()[k] for k in ("max_abs_error", "mismatches", "passed")}
        if tolerance.violation:
            failed.append(tolerance.violation)
        elif not stats.passed:
            failed.append(stats.failure())
    if failed:
        raise ParityError(f"{what} does not match torch: " + "; ".join(failed))
    return figures


def parity_item(
    spec: Any,
    output_name: str,
    batch_size: int,
    inputs: Any,
    golden: Mapping[str, Any],
    outputs: Callable[[int], Mapping[str, Any]],
    policy: TolerancePolicy,
    details: dict[str, Any],
    *,
    produces_no: str,
) -> tuple[str | None, ParityStats | None]:
    """One parity item as every runtime's parity check judges it: the first ``batch_size`` golden windows
    through ``outputs``, output ``output_name`` against the golden values under the verifier's policy, the
    figures recorded in ``details``. Returns (why the item fails before any figure, None) or (None, stats):
    ``stats.passed`` says the rest. ``produces_no`` begins the message for a runtime that lacks the output
    ("ONNX produced no")."""
    if inputs.shape[0] < batch_size:
        return (
            f"reference/inputs.npy holds {inputs.shape[0]} windows; parity at batch {batch_size} "
            f"needs {batch_size}",
            None,
        )
    if output_name not in golden:
        return f"reference/outputs.npz has no {output_name}", None
    got = outputs(batch_size)
    if output_name not in got:
        return f"{produces_no} {output_name} (has {sorted(got)})", None
    details["batch_size"] = batch_size
    tolerance, stats = compare_output(
        spec.output(output_name), got[output_name], golden[output_name][:batch_size], policy
    )
    details["tolerance"] = tolerance.as_dict()
    if tolerance.violation:
        return tolerance.violation, None
    details.update(stats.as_dict())
    return None, stats
