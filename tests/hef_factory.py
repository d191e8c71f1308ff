"""Synthesize HEF files from the published header layout, for tests that have no Hailo compiler.

The protobuf body is written by the tiny encoder below (not the protobuf package), the way proto3 does:
fields with default values (0, "") are left out, so ``hw_arch_id=0`` (HAILO8) writes no hw_arch field.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence

import xxhash

HEF_MAGIC = b"\x01HEF"
DEFAULT_CCWS = b"\x00ccws\x01\x02\x03 not really context-switch data"


def varint(value: int) -> bytes:
    value &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def uint_field(field: int, value: int) -> bytes:
    return key(field, 0) + varint(value) if value else b""


def bytes_field(field: int, value: bytes) -> bytes:
    return key(field, 2) + varint(len(value)) + value


def str_field(field: int, value: str) -> bytes:
    return bytes_field(field, value.encode()) if value else b""


def fixed64_field(field: int, value: int) -> bytes:
    return key(field, 1) + struct.pack("<Q", value)


def fixed32_field(field: int, value: int) -> bytes:
    return key(field, 5) + struct.pack("<I", value)


def header_message(hw_arch_id: int, timestamp_ms: int, sdk_version: str, format_version: int) -> bytes:
    return (
        uint_field(1, hw_arch_id)
        + uint_field(2, timestamp_ms)
        + str_field(3, sdk_version)
        + uint_field(4, format_version)
    )


def network_group(name: str, *, new_style_name: bool = False) -> bytes:
    """A ProtoHEFNetworkGroup with its name at 10 (new style) or at 1 -> 1, among fields a reader skips."""
    contexts = bytes_field(3, uint_field(1, 0) + bytes_field(2, b"\x08\x01" * 40))  # a context, nested
    body = contexts + str_field(4, f"{name}/output_layer1")
    body += fixed64_field(20, 0xDEADBEEF) + fixed32_field(21, 7)  # unknown fields, I64 and I32
    if new_style_name:
        return str_field(10, name) + uint_field(11, 0) + body
    metadata = str_field(1, name) + uint_field(2, 0) + fixed64_field(4, 0x4059000000000000)  # fps: 100.0
    return bytes_field(1, metadata) + body


def proto_body(
    hw_arch_id: int = 1,
    net_names: Sequence[str] = ("conv2d_fsq",),
    sdk_version: str = "3.27.0",
    *,
    timestamp_ms: int = 1716711978356,
    format_version: int = 4,
    new_style_name: bool = False,
    with_header: bool = True,
) -> bytes:
    """A ProtoHEFHef: header (1), network groups (2), and a mapping blob (3) a reader must skip."""
    out = (
        bytes_field(1, header_message(hw_arch_id, timestamp_ms, sdk_version, format_version))
        if with_header
        else b""
    )
    for name in net_names:
        out += bytes_field(2, network_group(name, new_style_name=new_style_name))
    return out + bytes_field(3, bytes(range(256)) * 4)


def wrap(
    version: int,
    proto: bytes,
    ccws: bytes = DEFAULT_CCWS,
    *,
    v3_proto_hash: bool = True,
    v3_padding: int = 4,
    corrupt: bool = False,
) -> bytes:
    """Put a header of ``version`` in front of ``proto`` (+ ccws for versions >= 1) with correct hashes.

    v0 has no ccws (everything after the header is the proto). v3 writes ``v3_padding`` zero bytes
    between proto and ccws, counted in ccws_size_with_padding. ``corrupt`` flips one byte of the proto
    after the hashes are computed, so every version's integrity check must fail.
    """
    common = struct.Struct(">4sII")
    if version == 0:
        rest = proto
        header = common.pack(HEF_MAGIC, 0, len(proto)) + struct.pack(">I16s", 0, hashlib.md5(rest).digest())
    elif version == 1:
        rest = proto + ccws
        header = common.pack(HEF_MAGIC, 1, len(proto)) + struct.pack(">IQI", zlib.crc32(rest), len(ccws), 0)
    elif version == 2:
        rest = proto + ccws
        header = common.pack(HEF_MAGIC, 2, len(proto)) + struct.pack(
            ">QQQQ", xxhash.xxh3_64_intdigest(rest), len(ccws), 0, 0
        )
    elif version == 3:
        additional_info = b"additional-info"
        rest = proto + b"\x00" * v3_padding + ccws + additional_info
        proto_hash = xxhash.xxh3_64_intdigest(proto) if v3_proto_hash else 0
        header = common.pack(HEF_MAGIC, 3, len(proto)) + struct.pack(
            ">QQIQQQ",
            xxhash.xxh3_64_intdigest(rest),
            v3_padding + len(ccws),
            v3_padding,
            len(additional_info),
            proto_hash,
            0,
        )
    else:
        raise ValueError(f"no layout for header version {version}")
    if corrupt:
        flip = len(proto) // 2
        rest = rest[:flip] + bytes([rest[flip] ^ 0x5A]) + rest[flip + 1 :]
    return header + rest


def make_hef(
    version: int,
    hw_arch_id: int = 1,
    net_name: str = "conv2d_fsq",
    sdk_version: str = "3.27.0",
    corrupt: bool = False,
    ccws: bytes = DEFAULT_CCWS,
    new_style_name: bool = False,
    *,
    v3_proto_hash: bool = True,
    v3_padding: int = 4,
) -> bytes:
    """A complete HEF of header ``version`` (0-3) for one network group ``net_name``, valid unless
    ``corrupt``. ``v3_proto_hash`` and ``v3_padding`` shape version 3 (see :func:`wrap`)."""
    proto = proto_body(hw_arch_id, [net_name], sdk_version, new_style_name=new_style_name)
    return wrap(version, proto, ccws, corrupt=corrupt, v3_proto_hash=v3_proto_hash, v3_padding=v3_padding)


HEADER_SIZES = {0: 32, 1: 28, 2: 44, 3: 56}
