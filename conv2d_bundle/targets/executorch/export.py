"""Export a model to ExecuTorch: ``torch.export`` with a dynamic batch, lowered to XNNPACK (fp32), written as a
``.pte``; and a BundledProgram (``.bpte``) embedding golden cases so a device can check the program itself.

Measured pitfall (executorch 1.5.1, torch 2.13): lowering narrows the batch range to what the example input's
batch lets the convolution kernels assume; with an example batch of 2 the program is planned for batches up
to 15 only. The example batch is therefore the maximum, and the planned input size is checked after export.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.errors import ExportError, MissingExtraError

log = logging.getLogger(__name__)
BUNDLED_BATCHES = (1, 7)  # plus the largest allowed: the cases the parity check runs too


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ExecuTorch and torchao print import-time noise (deprecations, FutureWarnings): to the debug log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("executorch: %s", w.message)


def export_program(model: Any, input_shape: tuple[int, ...], max_batch: int) -> Any:
    """The model as an ExecuTorch program (``ExecutorchProgramManager``), batch 1..``max_batch``."""
    try:
        with _quiet():
            import torch
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise MissingExtraError(
            "ExecuTorch export needs executorch: pip install 'conv2d-bundle[executorch]'"
        ) from exc
    example = torch.zeros((max_batch, *input_shape[1:]), dtype=torch.float32)  # the maximum: see the module
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    try:
        with _quiet(), torch.no_grad():
            exported = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
            program = to_edge_transform_and_lower(
                exported, partitioner=[XnnpackPartitioner()]
            ).to_executorch()
    except Exception as exc:  # torch.export and the lowering raise many types; all mean "could not export"
        raise ExportError(
            f"ExecuTorch export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    plan = program.executorch_program.execution_plan[0]
    planned = list(plan.values[plan.inputs[0]].val.sizes)
    if planned[0] != max_batch:
        raise ExportError(f"ExecuTorch planned the input for batch {planned[0]}, not the maximum {max_batch}")
    return program


def bundled_program(
    program: Any, inputs: Any, outputs: dict[str, Any], names: tuple[str, ...], batches: list[int]
) -> bytes:
    """A ``.bpte``: ``program`` with one test case per batch size (the golden rows and their outputs)."""
    with _quiet():
        import torch
        from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
        from executorch.devtools.bundled_program.core import BundledProgram
        from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

        cases = [
            MethodTestCase(
                inputs=[torch.from_numpy(inputs[:n].copy())],
                expected_outputs=[torch.from_numpy(outputs[name][:n].copy()) for name in names],
            )
            for n in batches
        ]
        suite = MethodTestSuite(method_name="forward", test_cases=cases)
        return bytes(serialize_from_bundled_program_to_flatbuffer(BundledProgram(program, [suite])))


def build(ctx: Any) -> dict[str, Any]:
    """Write ``models/model.pte`` and ``models/model.bpte`` into the staging bundle; check parity here."""
    from conv2d_bundle.parity.figures import check_outputs
    from conv2d_bundle.targets.executorch import BPTE_FILE, PTE_FILE, max_batch
    from conv2d_bundle.targets.executorch.runner import program_runner

    spec = ctx.config.model
    limit = max_batch(ctx.config.data["export"].get("executorch", {}))
    rows = int(ctx.reference.inputs.shape[0])
    if not 1 <= limit <= 4096:
        raise ExportError(f"export.executorch.max_batch {limit}: expected 1..4096")
    program = export_program(ctx.model, spec.input_shape, limit)
    pte = ctx.staging / PTE_FILE
    atomic.write_bytes(pte, program.buffer)
    got = program_runner(pte, spec)(ctx.reference.inputs[: min(rows, limit)])
    expected = {name: values[: min(rows, limit)] for name, values in ctx.reference.outputs.items()}
    parity = check_outputs(got, expected, spec.outputs, "the ExecuTorch program")
    batches = sorted({min(b, rows, limit) for b in (*BUNDLED_BATCHES, limit)})
    bpte = ctx.staging / BPTE_FILE
    atomic.write_bytes(
        bpte,
        bundled_program(program, ctx.reference.inputs, ctx.reference.outputs, spec.output_names, batches),
    )
    return {
        "status": "built",
        "file": PTE_FILE,
        "bundled_program": BPTE_FILE,
        "bundled_cases": batches,
        "max_batch": limit,
        "delegate": "XNNPACK",
        "executorch_version": _version(),
        **ctx.size_entry(pte),
        "parity": parity,
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("executorch")
    except PackageNotFoundError:  # pragma: no cover - export needs it installed
        return "unknown"
