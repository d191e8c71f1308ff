"""Read a BundledProgram (``.bpte``) without torch: the embedded test cases and program, from the flatbuffer.

The layout is ExecuTorch's ``bundled_program_schema.fbs`` (file identifier ``BP08``): a root table of
(version, method test suites, program bytes); a suite is (method name, test cases); a case is (inputs,
expected outputs), each a list of values (a union whose tensor member holds scalar type, sizes and data).
flatbuffers + numpy only, so a device verifying a bundle does not need torch for this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conv2d_bundle.errors import BundleIntegrityError

IDENTIFIER = b"BP08"
#: ExecuTorch ScalarType -> numpy dtype (the ones a bundle's models use)
SCALAR_TYPES = {
    0: np.uint8,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.int64,
    5: np.float16,
    6: np.float32,
    7: np.float64,
    11: np.bool_,
}


@dataclass(frozen=True)
class BundledCase:
    inputs: list[np.ndarray]
    expected: list[np.ndarray]


@dataclass(frozen=True)
class BundledFile:
    version: int
    suites: dict[str, list[BundledCase]]
    program: bytes


def read_bundled(data: bytes) -> BundledFile:
    """The cases and program of a ``.bpte``; BundleIntegrityError for anything that is not one."""
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise BundleIntegrityError(
            f"not a BundledProgram (identifier {bytes(data[4:8])!r}, expected {IDENTIFIER!r})"
        )
    try:
        return _read(data)
    except (IndexError, ValueError, KeyError, TypeError) as exc:  # truncated or malformed flatbuffer
        raise BundleIntegrityError(f"BundledProgram is malformed: {type(exc).__name__}: {exc}") from exc


def _read(data: bytes) -> BundledFile:
    from flatbuffers import encode, packer, table
    from flatbuffers import number_types as n

    def field(t: table.Table, i: int) -> int:  # vtable slot of field i (0: absent)
        return int(t.Offset(4 + 2 * i))

    def vector(t: table.Table, i: int) -> tuple[int, int]:
        o = field(t, i)
        return (t.Vector(o), t.VectorLen(o)) if o else (0, 0)

    def tables(t: table.Table, i: int) -> list[table.Table]:
        start, count = vector(t, i)
        return [table.Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(count)]

    def tensor(t: table.Table) -> np.ndarray:
        o = field(t, 0)
        scalar = t.Get(n.Int8Flags, o + t.Pos) if o else 0
        start, count = vector(t, 1)
        sizes = [encode.Get(packer.int32, t.Bytes, start + 4 * k) for k in range(count)]
        start, count = vector(t, 2)
        dtype = np.dtype(SCALAR_TYPES[scalar]).newbyteorder("<")
        return np.frombuffer(bytes(t.Bytes[start : start + count]), dtype=dtype).reshape(sizes)

    def value(v: table.Table) -> np.ndarray:
        kind = v.Get(n.Uint8Flags, field(v, 0) + v.Pos) if field(v, 0) else 0
        member = table.Table(v.Bytes, 0)
        v.Union(member, field(v, 1))
        if kind != 1:
            raise ValueError(f"a bundled value of kind {kind}, not a tensor")
        return tensor(member)

    root = table.Table(data, encode.Get(packer.uoffset, data, 0))
    version = root.Get(n.Uint32Flags, field(root, 0) + root.Pos) if field(root, 0) else 0
    suites = {}
    for suite in tables(root, 1):
        name = suite.String(field(suite, 0) + suite.Pos).decode()
        suites[name] = [
            BundledCase([value(v) for v in tables(c, 0)], [value(v) for v in tables(c, 1)])
            for c in tables(suite, 1)
        ]
    start, count = vector(root, 2)
    return BundledFile(int(version), suites, bytes(data[start : start + count]))
