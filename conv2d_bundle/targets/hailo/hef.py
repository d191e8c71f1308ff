"""Offline reader of Hailo HEF files: no Hailo software, no protobuf package, no torch.

A HEF starts with a packed big-endian header (hailort ``hef_internal.hpp``): magic ``b"\\x01HEF"``,
header version, proto size, then a per-version tail. After the header come the protobuf body
(``ProtoHEFHef``, proto size bytes) and, from version 1 on, the ccws data. :func:`read_hef` checks the
header and the integrity hash the way HailoRT's ``Hef::Impl::parse_hef_file`` (``hef.cpp``) does:

- v0: MD5 of everything after the header, which must be exactly the proto;
- v1: CRC32 (zlib) of everything after the header, which must be proto + ``ccws_size`` bytes;
- v2: xxh3_64 of everything after the header, which must be proto + ``ccws_size`` bytes;
- v3: if ``proto_xxh3_64`` is non-zero, only the xxh3_64 of the proto bytes is checked (HailoRT leaves
  the ccws to the firmware, so damage there is not seen here either; what ``xxh3_64`` covers in that
  case is not stated in the source, so it is not checked) and the file must be at least proto +
  ``ccws_size_with_padding`` + ``additional_info_size`` long (a check HailoRT does not make there);
  if it is zero, the xxh3_64 of everything after the header is checked and the length must be exact.

Then only the header message and the network-group names are decoded, by a small bounded decoder of
the protobuf wire format (fixed nesting depth, no recursion). proto3 omits default values, so a header
message without ``hw_arch`` means HAILO8 (0); a body without a header message is an error.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from conv2d_bundle.errors import HefError

HEF_MAGIC = b"\x01HEF"
HW_ARCH_NAMES: dict[int, str] = {
    0: "HAILO8",
    1: "HAILO8P",
    2: "HAILO8R",
    3: "HAILO8L",
    4: "HAILO15M",
    5: "HAILO10H",
    6: "HAILO15L",
    103: "HAILO15H",
}

_COMMON = struct.Struct(">4sII")  # magic, version, proto size
# header version -> (per-version tail, hash algorithm); sizes 32, 28, 44 and 56 bytes in all
_TAILS: dict[int, tuple[struct.Struct, str]] = {
    0: (struct.Struct(">I16s"), "md5"),  # reserved, MD5
    1: (struct.Struct(">IQI"), "crc32"),  # crc, ccws_size, reserved
    2: (struct.Struct(">QQQQ"), "xxh3_64"),  # xxh3_64, ccws_size, reserved x2
    # xxh3_64, ccws_size_with_padding, hef_padding_size, additional_info_size, proto_xxh3_64, reserved
    3: (struct.Struct(">QQIQQQ"), "xxh3_64"),
}
_LABELS = {"md5": ("MD5", 32), "crc32": ("CRC32", 8), "xxh3_64": ("xxh3_64", 16)}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class HefInfo:
    """What :func:`read_hef` found in a HEF whose header and integrity hash check out."""

    path: str
    header_version: int
    proto_size: int
    hash_algorithm: str  # "md5" | "crc32" | "xxh3_64"
    hw_arch: str  # e.g. "HAILO8P"; "UNKNOWN(<n>)" for an enum value not in HW_ARCH_NAMES
    hw_arch_id: int
    sdk_version: str | None
    timestamp_ms: int | None
    format_version: int | None
    network_groups: tuple[str, ...]
    file_size: int


def _digest(algorithm: str, chunks: Iterable[bytes]) -> int:
    """The integrity hash of the concatenated chunks, as an int (MD5 and xxh3_64 big-endian)."""
    if algorithm == "crc32":
        crc = 0
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
        return crc
    hasher: Any
    if algorithm == "md5":
        hasher = hashlib.md5(usedforsecurity=False)
    else:
        import xxhash  # declared dependency, only needed for header versions 2 and 3

        hasher = xxhash.xxh3_64()
    for chunk in chunks:
        hasher.update(chunk)
    return int.from_bytes(hasher.digest(), "big")


def read_hef(path: str | os.PathLike[str]) -> HefInfo:
    """Read a HEF's header, check its size and integrity hash, and decode its header message and
    network-group names. Every kind of damage raises :class:`HefError`."""
    name = os.fsdecode(path)
    try:
        with open(name, "rb") as stream:
            return _read(stream, name, os.fstat(stream.fileno()).st_size)
    except OSError as exc:
        raise HefError(f"cannot read HEF {name}: {exc.strerror or exc}") from exc


def _read(stream: BinaryIO, path: str, size: int) -> HefInfo:
    common = stream.read(_COMMON.size)
    if not common or not HEF_MAGIC.startswith(common[:4]):
        raise HefError(f"{path}: not a HEF file (starts {common[:4]!r}, expected magic {HEF_MAGIC!r})")
    if len(common) < _COMMON.size:
        raise HefError(f"{path}: truncated HEF header ({size} bytes)")
    _, version, proto_size = _COMMON.unpack(common)
    if version not in _TAILS:
        raise HefError(f"{path}: unsupported HEF header version {version} (known: {sorted(_TAILS)})")
    tail_struct, algorithm = _TAILS[version]
    header_size = _COMMON.size + tail_struct.size
    raw_tail = stream.read(tail_struct.size)
    if len(raw_tail) < tail_struct.size:
        raise HefError(
            f"{path}: truncated HEF header: version {version} needs {header_size} bytes, the file has {size}"
        )
    tail = tail_struct.unpack(raw_tail)
    residue = size - header_size
    if proto_size > residue:
        raise HefError(
            f"{path}: proto size {proto_size} is beyond the file: only {residue} bytes "
            f"follow the {header_size}-byte header (truncated?)"
        )
    label = ""
    expected_residue: int | None
    if version == 0:
        expected, expected_residue = int.from_bytes(tail[1], "big"), proto_size
    elif version in (1, 2):
        expected, expected_residue = tail[0], proto_size + tail[1]
    elif tail[4]:  # v3 with proto_xxh3_64: hash the proto only, as HailoRT does; sections must fit
        expected, expected_residue, label = tail[4], None, "proto xxh3_64"
        if residue < proto_size + tail[1] + tail[3]:
            raise HefError(
                f"{path}: truncated HEF: {residue} bytes follow the header, its sections "
                f"need {proto_size + tail[1] + tail[3]}"
            )
    else:
        expected, expected_residue = tail[0], proto_size + tail[1] + tail[3]
    if expected_residue is not None and expected_residue != residue:
        raise HefError(
            f"{path}: file length does not match the header: {residue} bytes follow the "
            f"header, the header accounts for {expected_residue} (truncated or padded?)"
        )
    proto = stream.read(proto_size)
    if len(proto) != proto_size:
        raise HefError(f"{path}: truncated while reading the proto ({len(proto)} of {proto_size} bytes)")
    rest = iter(lambda: stream.read(_CHUNK), b"") if expected_residue is not None else iter(())
    found = _digest(algorithm, itertools.chain([proto], rest))
    if found != expected:
        name, width = _LABELS[algorithm]
        raise HefError(
            f"{path}: integrity check failed: {label or name} expected {expected:0{width}x}, "
            f"found {found:0{width}x} (the file is corrupt)"
        )
    try:
        arch_id, timestamp, sdk, format_version, groups = _parse_body(memoryview(proto))
    except _Malformed as exc:
        raise HefError(f"{path}: malformed protobuf body: {exc}") from exc
    return HefInfo(
        path=path,
        header_version=version,
        proto_size=proto_size,
        hash_algorithm=algorithm,
        hw_arch=HW_ARCH_NAMES.get(arch_id, f"UNKNOWN({arch_id})"),
        hw_arch_id=arch_id,
        sdk_version=sdk,
        timestamp_ms=timestamp,
        format_version=format_version,
        network_groups=groups,
        file_size=size,
    )


class _Malformed(ValueError):
    """Internal: the protobuf body does not decode (turned into HefError with the path)."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    for i in range(pos, min(pos + 10, len(buf))):
        result |= (buf[i] & 0x7F) << (7 * (i - pos))
        if buf[i] < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, i + 1
    raise _Malformed(f"truncated or over-long varint at offset {pos}")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) of one message; LEN values are zero-copy views."""
    pos = 0
    while pos < len(buf):  # every pass consumes at least one byte
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if not 0 < field < 1 << 29:
            raise _Malformed(f"invalid field number {field} before offset {pos}")
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise _Malformed(f"truncated fixed{width * 8} field {field} at offset {pos}")
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if length > len(buf) - pos:
                raise _Malformed(f"field {field} length {length} runs past its message at offset {pos}")
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise _Malformed(f"unsupported wire type {wire} (field {field}) before offset {pos}")
        yield field, wire, value


def _as_int(value: int | memoryview, what: str) -> int:
    if isinstance(value, memoryview):
        raise _Malformed(f"{what} is length-delimited, expected an integer")
    return value


def _as_bytes(value: int | memoryview, what: str) -> memoryview:
    if not isinstance(value, memoryview):
        raise _Malformed(f"{what} is an integer, expected a length-delimited field")
    return value


def _as_str(value: int | memoryview, what: str) -> str:
    try:
        return bytes(_as_bytes(value, what)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed(f"{what} is not UTF-8") from exc


def _parse_body(body: memoryview) -> tuple[int, int | None, str | None, int | None, tuple[str, ...]]:
    seen_header, arch_id = False, 0
    timestamp: int | None = None
    sdk: str | None = None
    format_version: int | None = None
    groups: list[str] = []
    for field, _, value in _fields(body):
        if field == 1:  # ProtoHEFHeader; repeated occurrences merge (last value wins)
            seen_header = True
            for hfield, _, hvalue in _fields(_as_bytes(value, "header")):
                if hfield == 1:
                    arch_id = _as_int(hvalue, "header.hw_arch")
                elif hfield == 2:
                    timestamp = _as_int(hvalue, "header.timestamp")
                elif hfield == 3:
                    sdk = _as_str(hvalue, "header.sdk_version")
                elif hfield == 4:
                    format_version = _as_int(hvalue, "header.version")
        elif field == 2:  # ProtoHEFNetworkGroup
            direct = legacy = None
            for gfield, _, gvalue in _fields(_as_bytes(value, "network group")):
                if gfield == 10:
                    direct = _as_str(gvalue, "network_group_name")
                elif gfield == 1:
                    for mfield, _, mvalue in _fields(_as_bytes(gvalue, "network_group_metadata")):
                        if mfield == 1:
                            legacy = _as_str(mvalue, "network_group_metadata.network_group_name")
            groups.append(direct or legacy or "")
    if not seen_header:
        raise _Malformed("no header message (field 1), so no hw_arch")
    return arch_id, timestamp, sdk, format_version, tuple(groups)


_DEVICE_ACCEPTS = {"hailo8": ("HAILO8", "HAILO8P", "HAILO8R"), "hailo8l": ("HAILO8L",)}


def device_accepts(device: str, hef_arch: str) -> tuple[bool, str | None]:
    """Whether a device configured as ``device`` ("hailo8", "hailo8l", any case) runs a HEF compiled
    for ``hef_arch``. Returns (accepted, warning or refusal reason); an unknown device raises HefError."""
    key = re.sub(r"[\s_-]", "", device.lower())
    if key not in _DEVICE_ACCEPTS:
        raise HefError(f"unknown Hailo device {device!r} (known: {', '.join(_DEVICE_ACCEPTS)})")
    arch = hef_arch.strip().upper()
    if arch in _DEVICE_ACCEPTS[key]:
        return True, None
    if key == "hailo8" and arch == "HAILO8L":
        return True, (
            "the HEF was compiled for HAILO8L and runs on this Hailo-8 device at Hailo-8L "
            "performance; compile with --hw-arch hailo8 for full speed"
        )
    return False, f"a {key} device does not accept a HEF compiled for {arch}"


_ARCH_RE = re.compile(r"Architecture HEF was compiled for:\s*(\w+)", re.IGNORECASE)
_COMPAT_RE = re.compile(r"HEF Compatible for:\s*(.+)", re.IGNORECASE)
_GROUP_RE = re.compile(
    r"^\s*Network group name:\s*(?P<name>.+?)(?:,\s*(?P<ctx>Single|Multi) Context\b(?:"
    r".*contexts:\s*(?P<n>\d+))?.*|\s*\((?P<ctx_old>Single|Multi) Context\))?\s*$"
)
_NETWORK_RE = re.compile(r"^\s*Network name:\s*(\S+)")
_STREAM_RE = re.compile(
    r"^\s*(?P<dir>Input|Output)\s+(?P<name>\S+)(?:\s+(?P<type>\w+)\s*,\s*(?P<fmt>.*?))?\s*$"
)
_FORMAT_RE = re.compile(r"^(?P<order>[^(]*?)\s*\((?P<args>.*)\)$")


def parse_hailortcli_output(text: str) -> dict[str, Any]:
    """Parse ``hailortcli parse-hef`` output into {"architecture", "compatible_architectures",
    "network_groups", "contexts", "networks", "inputs", "outputs"}. Vstream lines look like
    ``Input  NAME/input_layer1 UINT8, NHWC(2x100x9)``; shapes are lists of ints, or None where the
    format has no dims (``HAILO NMS BY CLASS(...)``). Lines it does not know are ignored."""
    result: dict[str, Any] = {
        "architecture": None,
        "compatible_architectures": [],
        "network_groups": [],
        "contexts": {},
        "networks": [],
        "inputs": [],
        "outputs": [],
    }
    group: str | None = None
    section: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if match := _ARCH_RE.search(line):
            result["architecture"] = match.group(1).upper()
            result["compatible_architectures"] = [result["architecture"]]
        elif match := _COMPAT_RE.search(line):
            archs = [a.strip().upper() for a in match.group(1).split(",") if a.strip()]
            result["compatible_architectures"] = archs
            result["architecture"] = result["architecture"] or (archs[0] if archs else None)
        elif match := _GROUP_RE.match(line):
            group, section = match.group("name"), None
            result["network_groups"].append(group)
            ctx = match.group("ctx") or match.group("ctx_old")
            count = match.group("n")
            result["contexts"][group] = int(count) if count else (1 if ctx == "Single" else None)
        elif match := _NETWORK_RE.match(line):
            result["networks"].append(match.group(1))
            section = None
        elif stripped.endswith("infos:") or stripped == "Operation:":
            section = stripped.rstrip(":").lower()
        elif (match := _STREAM_RE.match(line)) and section in (None, "vstream infos"):
            result["inputs" if match.group("dir") == "Input" else "outputs"].append(
                _stream_entry(match, group)
            )
    if result["architecture"] is None and not result["network_groups"]:
        raise HefError(f"unrecognised `hailortcli parse-hef` output: {text.strip()[:200]!r}")
    return result


def _stream_entry(match: re.Match[str], group: str | None) -> dict[str, Any]:
    fmt = match.group("fmt") or ""
    order, shape = fmt or None, None
    if parts := _FORMAT_RE.match(fmt):
        order = parts.group("order")
        if re.fullmatch(r"\d+(?:x\d+)*", parts.group("args").strip()):
            shape = [int(d) for d in parts.group("args").split("x")]
    return {
        "name": match.group("name"),
        "type": match.group("type"),
        "format": order,
        "shape": shape,
        "network_group": group,
    }


def find_hailortcli() -> str | None:
    """The path of ``hailortcli`` on PATH, or None."""
    return shutil.which("hailortcli")


def run_parse_hef(path: str | os.PathLike[str], timeout: float = 60) -> dict[str, Any]:
    """Run ``hailortcli parse-hef PATH`` and parse its output; HefError with the tool's stderr on failure."""
    tool = find_hailortcli()
    if tool is None:
        raise HefError("hailortcli is not on PATH (it comes with HailoRT); cannot run parse-hef")
    command = [tool, "parse-hef", os.fsdecode(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HefError(f"hailortcli parse-hef {os.fsdecode(path)} timed out after {timeout} s") from exc
    except OSError as exc:
        raise HefError(f"cannot run {tool}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output")[-2000:]
        raise HefError(f"hailortcli parse-hef {os.fsdecode(path)} failed (exit {done.returncode}): {detail}")
    return parse_hailortcli_output(done.stdout)
