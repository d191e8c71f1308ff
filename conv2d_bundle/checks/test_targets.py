"""The checks every target gets: its format is in the bundle, and its runner reproduces the golden outputs.

One parity check for every runtime: the plugin parametrizes it over the selected targets x the configured
outputs x batch sizes 1, 7 and 64 (capped at the golden windows), so an id reads
``test_parity[onnx-confidence-7]``. Each target's runner loads the exported model and runs the golden inputs
(ONNX in onnxruntime, Core ML through ``predict()``, the Hailo kit's device part plus the host
post-processing, ...); the comparison is the verifier's (integers exactly, floats within its tolerance
policy). Where a target's runner cannot execute on this host, its parity items are skipped with the reason
the target gives (``conv2d pack targets`` lists them), never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from conv2d_bundle.errors import BundleError
from conv2d_bundle.targets import get_target

pytestmark = pytest.mark.conv2d_per_target

Outputs = Callable[[int], Mapping[str, Any]]


@pytest.fixture(scope="session")
def target_outputs(target_name: str, bundle: Any, reference_inputs: Any) -> Iterator[Outputs]:
    """The target's outputs on the first ``n`` golden windows, each batch size run once per session."""
    target = get_target(target_name)
    capability = target.capability()
    if not capability.executes:
        pytest.skip(capability.reason)
    try:
        runner = target.runner(bundle)
    except BundleError as exc:  # the export does not load: every parity item of the target errors, saying so
        pytest.fail(str(exc))
    cache: dict[int, Mapping[str, Any]] = {}

    def outputs(n: int) -> Mapping[str, Any]:
        if n not in cache:
            try:
                cache[n] = runner(reference_inputs[:n])
            except BundleError as exc:
                pytest.fail(f"{target.title}, batch {n}: {exc}")
            except Exception as exc:  # a runtime refusing the golden inputs: the export does not run
                pytest.fail(
                    f"{target.title}, batch {n}: {target.runs_as} failed: {type(exc).__name__}: {exc}"
                )
        return cache[n]

    yield outputs


@pytest.mark.conv2d_format_check
def test_format_built(target_name: str, bundle: Any, check_details: dict) -> None:
    """The bundle holds the target's format: without it, this fails once and the target's checks are not run."""
    target = get_target(target_name)
    check_details.update(format=target.format)
    missing = target.missing(bundle)
    if missing:
        pytest.fail(missing)


def test_parity(
    target_name: str,
    bundle: Any,
    target_outputs: Outputs,
    reference_inputs: Any,
    reference_outputs: Any,
    model_spec: Any,
    tolerance_policy: Any,
    output_name: str,
    batch_size: int,
    check_details: dict,
) -> None:
    """The golden outputs reproduced by the target's runner: integers exactly, floats within the verifier's
    tolerance policy; a parity item compares exactly the rows its id names."""
    from conv2d_bundle.parity.figures import parity_item

    problem, stats = parity_item(
        model_spec,
        output_name,
        batch_size,
        reference_inputs,
        reference_outputs,
        target_outputs,
        tolerance_policy,
        check_details,
        produces_no=f"{get_target(target_name).title} produced no",
    )
    if problem:
        pytest.fail(problem)
    assert stats is not None  # no problem: the figures exist (for mypy)
    if not stats.passed:
        where = _divergence(
            target_name, bundle, reference_inputs[:batch_size], tolerance_policy, check_details
        )
        pytest.fail(f"{target_name} parity, batch {batch_size}: {stats.failure()}{where}")


def _divergence(target_name: str, bundle: Any, inputs: Any, policy: Any, details: dict) -> str:
    """Where the export left the source model, for a failing parity item (targets that can tell): ``"; diverges
    at encoder (max abs 3.1e-02); agrees up to ..."``, or why it could not be located. Never hides the failure."""
    try:
        found = get_target(target_name).locate_divergence(bundle, inputs, policy)
    except BundleError as exc:
        details["divergence"] = {"error": str(exc)}
        return f" (divergence not located: {exc})"
    except Exception as exc:  # locating is evidence on top of a failure, never the failure itself
        details["divergence"] = {"error": f"{type(exc).__name__}: {exc}"}
        return f" (divergence not located: {type(exc).__name__}: {exc})"
    if found is None:
        return ""
    details["divergence"] = found.as_dict()
    return f"; {found.describe()}"
