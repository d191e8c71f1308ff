"""The offline HEF reader: header versions, integrity hashes, damage, architectures, hailortcli output."""

from __future__ import annotations

import os
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conv2d_bundle.errors import BundleError, HefError
from conv2d_bundle.targets.hailo.hef import (
    HEF_MAGIC,
    HW_ARCH_NAMES,
    HefInfo,
    device_accepts,
    find_hailortcli,
    parse_hailortcli_output,
    read_hef,
    run_parse_hef,
)
from tests import hef_factory as factory

REAL_HEF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hef" / "real_hailo8_dfc3.27.hef"
VERSIONS = [0, 1, 2, 3]
HASH_OF_VERSION = {0: "md5", 1: "crc32", 2: "xxh3_64", 3: "xxh3_64"}

WriteHef = Callable[[bytes], Path]


@pytest.fixture
def write_hef(tmp_path: Path) -> WriteHef:
    def write(data: bytes) -> Path:
        path = tmp_path / "model.hef"
        path.write_bytes(data)
        return path

    return write


def with_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack(">I", value) + data[offset + 4 :]


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("new_style_name", [False, True], ids=["metadata-name", "field10-name"])
@pytest.mark.parametrize("version", VERSIONS)
def test_each_header_version_round_trips(write_hef: WriteHef, version: int, new_style_name: bool) -> None:
    data = factory.make_hef(
        version, hw_arch_id=1, net_name="conv2d_fsq", sdk_version="3.27.0", new_style_name=new_style_name
    )
    path = write_hef(data)
    proto = factory.proto_body(1, ["conv2d_fsq"], "3.27.0", new_style_name=new_style_name)

    info = read_hef(path)

    assert info == HefInfo(
        path=str(path),
        header_version=version,
        proto_size=len(proto),
        hash_algorithm=HASH_OF_VERSION[version],
        hw_arch="HAILO8P",
        hw_arch_id=1,
        sdk_version="3.27.0",
        timestamp_ms=1716711978356,
        format_version=4,
        network_groups=("conv2d_fsq",),
        file_size=len(data),
    )
    assert data[factory.HEADER_SIZES[version] :].startswith(proto)


def test_accepts_str_and_pathlike(write_hef: WriteHef) -> None:
    path = write_hef(factory.make_hef(1))
    assert read_hef(str(path)) == read_hef(path)


def test_several_network_groups_keep_their_order(write_hef: WriteHef) -> None:
    proto = factory.proto_body(3, ["first", "second", "third"], "3.33.0")
    info = read_hef(write_hef(factory.wrap(2, proto)))
    assert info.network_groups == ("first", "second", "third")
    assert (info.hw_arch, info.sdk_version) == ("HAILO8L", "3.33.0")


def test_field10_name_wins_over_metadata_name(write_hef: WriteHef) -> None:
    group = factory.str_field(10, "new_name") + factory.bytes_field(1, factory.str_field(1, "old_name"))
    proto = factory.bytes_field(1, factory.header_message(1, 1, "3.27.0", 4)) + factory.bytes_field(2, group)
    assert read_hef(write_hef(factory.wrap(1, proto))).network_groups == ("new_name",)


def test_unknown_fields_of_every_wire_type_are_skipped(write_hef: WriteHef) -> None:
    extra = (
        factory.uint_field(30, 5)
        + factory.fixed64_field(31, 1)
        + factory.fixed32_field(32, 2)
        + factory.bytes_field(33, b"\xff" * 10)
    )
    header = factory.header_message(5, 7, "5.0.0", 6) + extra
    proto = extra + factory.bytes_field(1, header) + factory.bytes_field(2, factory.network_group("g"))
    info = read_hef(write_hef(factory.wrap(3, proto)))
    found = (info.hw_arch, info.timestamp_ms, info.sdk_version, info.format_version)
    assert found == ("HAILO10H", 7, "5.0.0", 6)


def test_absent_optional_header_fields_read_as_none(write_hef: WriteHef) -> None:
    proto = factory.bytes_field(1, factory.uint_field(1, 3))
    info = read_hef(write_hef(factory.wrap(0, proto)))
    found = (info.hw_arch, info.sdk_version, info.timestamp_ms, info.format_version)
    assert found == ("HAILO8L", None, None, None)
    assert info.network_groups == ()


# --- architectures ----------------------------------------------------------------------------------


def test_hw_arch_table_matches_hef_proto_enum() -> None:
    assert HW_ARCH_NAMES == {
        0: "HAILO8",
        1: "HAILO8P",
        2: "HAILO8R",
        3: "HAILO8L",
        4: "HAILO15M",
        5: "HAILO10H",
        6: "HAILO15L",
        103: "HAILO15H",
    }


@pytest.mark.parametrize(("arch_id", "name"), [*sorted(HW_ARCH_NAMES.items()), (100, "UNKNOWN(100)")])
def test_architectures(write_hef: WriteHef, arch_id: int, name: str) -> None:
    info = read_hef(write_hef(factory.make_hef(2, hw_arch_id=arch_id)))
    assert (info.hw_arch, info.hw_arch_id) == (name, arch_id)


def test_hailo8_is_proto3_default_and_not_written(write_hef: WriteHef) -> None:
    header = factory.header_message(0, 1, "3.27.0", 4)
    assert not header.startswith(b"\x08")  # no field 1: proto3 leaves the default out
    assert read_hef(write_hef(factory.make_hef(1, hw_arch_id=0))).hw_arch == "HAILO8"


@pytest.mark.parametrize(
    ("device", "hef_arch", "accepted", "message"),
    [
        ("hailo8", "HAILO8", True, None),
        ("hailo8", "HAILO8P", True, None),
        ("hailo8", "HAILO8R", True, None),
        ("HAILO8", "hailo8p", True, None),
        ("hailo8", "HAILO8L", True, "Hailo-8L performance"),
        ("hailo8", "HAILO15H", False, "does not accept"),
        ("hailo8", "UNKNOWN(100)", False, "does not accept"),
        ("hailo8l", "HAILO8L", True, None),
        ("Hailo-8L", "HAILO8L", True, None),
        ("hailo8l", "HAILO8P", False, "hailo8l device does not accept a HEF compiled for HAILO8P"),
        ("hailo8l", "HAILO8", False, "does not accept"),
        ("hailo8l", "HAILO8R", False, "does not accept"),
    ],
)
def test_device_accepts_matrix(device: str, hef_arch: str, accepted: bool, message: str | None) -> None:
    ok, note = device_accepts(device, hef_arch)
    assert ok is accepted
    if message is None:
        assert note is None
    else:
        assert note is not None and message in note


@pytest.mark.parametrize("device", ["hailo15h", "gpu", ""])
def test_device_accepts_unknown_device(device: str) -> None:
    with pytest.raises(HefError, match="unknown Hailo device"):
        device_accepts(device, "HAILO8")


# --- damage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "label"), [(0, "MD5"), (1, "CRC32"), (2, "xxh3_64"), (3, "proto xxh3_64")]
)
def test_corrupt_byte_names_the_hash(write_hef: WriteHef, version: int, label: str) -> None:
    path = write_hef(factory.make_hef(version, corrupt=True))
    pattern = rf"integrity check failed: {label} expected [0-9a-f]+, found [0-9a-f]+"
    with pytest.raises(HefError, match=pattern):
        read_hef(path)


def test_v3_without_proto_hash_checks_everything_after_the_header(write_hef: WriteHef) -> None:
    data = factory.make_hef(3, v3_proto_hash=False)
    assert read_hef(write_hef(data)).header_version == 3
    damaged = data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]  # inside the additional info
    with pytest.raises(HefError, match=r"integrity check failed: xxh3_64 expected"):
        read_hef(write_hef(damaged))


def test_v3_with_proto_hash_checks_the_proto_only_as_hailort_does(write_hef: WriteHef) -> None:
    data = factory.make_hef(3)
    damaged = data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]  # after the proto: left to the firmware
    assert read_hef(write_hef(damaged)).network_groups == ("conv2d_fsq",)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"PK\x03\x04" + b"\x00" * 40,
        b"\x08\x07\x12\x05onnx" * 8,
        HEF_MAGIC[:3] + b"G" + b"\x00" * 60,
    ],
    ids=["empty", "one-byte", "zip", "onnx-like", "almost-magic"],
)
def test_bad_magic(write_hef: WriteHef, data: bytes) -> None:
    with pytest.raises(HefError, match="not a HEF file"):
        read_hef(write_hef(data))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda n, h: 2, "truncated HEF header"),
        (lambda n, h: 11, "truncated HEF header"),
        (lambda n, h: 13, "truncated HEF header"),
        (lambda n, h: h - 1, "truncated HEF header"),
        (lambda n, h: h, "proto size .* is beyond the file"),
        (lambda n, h: h + 10, "proto size .* is beyond the file"),
        (lambda n, h: n - 1, "beyond the file|file length does not match|truncated HEF:"),
    ],
    ids=["in-magic", "in-common", "in-tail", "header-minus-1", "header-only", "in-proto", "last-byte"],
)
def test_truncated_file(
    write_hef: WriteHef, version: int, cut: Callable[[int, int], int], message: str
) -> None:
    data = factory.make_hef(version, ccws=b"" if version == 0 else factory.DEFAULT_CCWS)
    with pytest.raises(HefError, match=message):
        read_hef(write_hef(data[: cut(len(data), factory.HEADER_SIZES[version])]))


@pytest.mark.parametrize("version", [4, 7, 0xFFFFFFFF])
def test_unknown_header_version(write_hef: WriteHef, version: int) -> None:
    with pytest.raises(HefError, match=f"unsupported HEF header version {version}"):
        read_hef(write_hef(with_u32(factory.make_hef(0), 4, version)))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("excess", [1, 1 << 20, None], ids=["plus-one", "plus-1MiB", "u32-max"])
def test_proto_size_beyond_file(write_hef: WriteHef, version: int, excess: int | None) -> None:
    data = factory.make_hef(version)
    size = 0xFFFFFFFF if excess is None else len(data) - factory.HEADER_SIZES[version] + excess
    with pytest.raises(HefError, match="is beyond the file"):
        read_hef(write_hef(with_u32(data, 8, size)))


@pytest.mark.parametrize("version", VERSIONS)
def test_trailing_bytes_break_the_length_check(write_hef: WriteHef, version: int) -> None:
    data = factory.make_hef(version, v3_proto_hash=False) + b"trailing"
    with pytest.raises(HefError, match="file length does not match the header"):
        read_hef(write_hef(data))


def test_missing_header_message(write_hef: WriteHef) -> None:
    path = write_hef(factory.wrap(1, factory.proto_body(with_header=False)))
    with pytest.raises(HefError) as info:
        read_hef(path)
    assert str(info.value).endswith(": malformed protobuf body: no header message (field 1), so no hw_arch")


def test_empty_proto_has_no_header(write_hef: WriteHef) -> None:
    with pytest.raises(HefError, match="no header message"):
        read_hef(write_hef(factory.wrap(0, b"")))


HEADER_OK = factory.bytes_field(1, factory.header_message(1, 1, "3.27.0", 4))


def test_a_network_group_without_a_name_reads_as_an_empty_name(write_hef: WriteHef) -> None:
    body = HEADER_OK + factory.bytes_field(2, b"") + factory.bytes_field(2, factory.network_group("net"))
    assert read_hef(write_hef(factory.wrap(2, body))).network_groups == ("", "net")


def test_bad_magic_names_the_first_four_bytes(write_hef: WriteHef) -> None:
    path = write_hef(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(HefError) as info:
        read_hef(path)
    assert str(info.value) == f"{path}: not a HEF file (starts b'PK\\x03\\x04', expected magic {HEF_MAGIC!r})"


def test_truncated_v3_sections_name_the_bytes_they_need(write_hef: WriteHef) -> None:
    data = factory.make_hef(3, v3_proto_hash=True)
    need = len(data) - factory.HEADER_SIZES[3]
    path = write_hef(data[:-1])
    with pytest.raises(HefError) as info:
        read_hef(path)
    assert str(info.value) == (
        f"{path}: truncated HEF: {need - 1} bytes follow the header, its sections need {need}"
    )


MALFORMED_BODIES = [
    (factory.key(2, 3) + HEADER_OK, "wire type 3"),
    (HEADER_OK + factory.key(9, 4), "wire type 4"),
    (HEADER_OK + factory.key(9, 7) + b"\x00", "wire type 7"),
    (HEADER_OK + b"\x08\x80", "truncated or over-long varint"),
    (HEADER_OK + b"\x08" + b"\xff" * 11, "truncated or over-long varint"),
    (HEADER_OK + b"\x0a\x05ab", "runs past its message"),
    (HEADER_OK + b"\x0a" + factory.varint(1 << 62), "runs past its message"),
    (HEADER_OK + b"\x00\x01", "invalid field number 0"),
    (HEADER_OK + factory.key(9, 1) + b"\x00" * 3, "truncated fixed64"),
    (HEADER_OK + factory.key(9, 5) + b"\x00", "truncated fixed32"),
    (factory.bytes_field(1, factory.bytes_field(1, b"x")), "header.hw_arch is length-delimited"),
    (factory.bytes_field(1, factory.uint_field(3, 5)), "header.sdk_version is an integer"),
    (factory.bytes_field(1, factory.bytes_field(3, b"\xff\xfe")), "header.sdk_version is not UTF-8"),
    (factory.uint_field(1, 1), "header is an integer"),
    (HEADER_OK + factory.bytes_field(2, factory.uint_field(10, 5)), "network_group_name is an integer"),
    (HEADER_OK + factory.bytes_field(2, b"\x0a\x03\x0a\x09x"), "runs past its message"),
    (HEADER_OK + factory.key(1 << 29, 0) + b"\x00", f"invalid field number {1 << 29}"),
    (HEADER_OK + b"\x08" + b"\xff" * 10 + b"\x01", "truncated or over-long varint"),
    (factory.bytes_field(1, factory.bytes_field(2, b"x")), "header.timestamp is length-delimited"),
    (factory.bytes_field(1, factory.bytes_field(4, b"x")), "header.version is length-delimited"),
    (HEADER_OK + factory.uint_field(2, 5), "network group is an integer"),
    (HEADER_OK + factory.bytes_field(2, factory.uint_field(1, 5)), "network_group_metadata is an integer"),
    (
        HEADER_OK + factory.bytes_field(2, factory.bytes_field(1, factory.uint_field(1, 5))),
        "network_group_metadata.network_group_name is an integer",
    ),
]


# Ids from the detail alone: pytest escapes a bytes value whose callable id is None once more in each session of a
# process, so the fork server of `make mutation` (one session per mutant) could not find these tests by id.
@pytest.mark.parametrize(
    ("proto", "detail"), MALFORMED_BODIES, ids=[detail for _, detail in MALFORMED_BODIES]
)
def test_malformed_protobuf_body(write_hef: WriteHef, proto: bytes, detail: str) -> None:
    path = write_hef(factory.wrap(2, proto))
    with pytest.raises(HefError, match="malformed protobuf body") as excinfo:
        read_hef(path)
    assert detail in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_unreadable_paths_raise_hef_error(tmp_path: Path) -> None:
    with pytest.raises(HefError, match="cannot read HEF"):
        read_hef(tmp_path / "missing.hef")
    with pytest.raises(HefError, match="cannot read HEF"):
        read_hef(tmp_path)


def test_hef_error_is_a_bundle_error() -> None:
    assert issubclass(HefError, BundleError)


# --- the real HEF -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_hef() -> Path:
    if not REAL_HEF.is_file():
        pytest.skip(f"real HEF not present at {REAL_HEF.resolve()} (shared test data, not in the repo)")
    return REAL_HEF


def test_real_hef_reads_as_its_readme_says(real_hef: Path) -> None:
    info = read_hef(real_hef)
    assert (info.header_version, info.hash_algorithm) == (0, "md5")
    assert (info.proto_size, info.file_size) == (2_595_712, 2_595_744)
    assert (info.hw_arch, info.hw_arch_id) == ("HAILO8P", 1)
    assert (info.sdk_version, info.timestamp_ms, info.format_version) == ("3.27.0", 1716711978356, 4)
    name = "x_feature_13_without_pixel_unshuffle_normilize_softmax_slice_224_320_sim"
    assert info.network_groups == (name,)
    assert device_accepts("hailo8", info.hw_arch) == (True, None)
    assert device_accepts("hailo8l", info.hw_arch)[0] is False


def test_real_hef_with_one_flipped_byte_fails_md5(real_hef: Path, write_hef: WriteHef) -> None:
    data = bytearray(real_hef.read_bytes())
    data[1_000_000] ^= 0x01
    with pytest.raises(HefError, match="integrity check failed: MD5 expected"):
        read_hef(write_hef(bytes(data)))


# --- hailortcli parse-hef output --------------------------------------------------------------------

# Shaped like real `hailortcli parse-hef` output (HailoRT 4.x), including a warning line it prints.
SAMPLE_HAILO8 = """\
[HailoRT] [warning] Unsupported firmware operation, some features are disabled
Architecture HEF was compiled for: HAILO8
Network group name: conv2d_fsq, Multi Context - Number of contexts: 1
    Network name: conv2d_fsq/conv2d_fsq
        VStream infos:
            Input  conv2d_fsq/input_layer1 UINT8, NHWC(2x100x9)
            Output conv2d_fsq/output_layer1 UINT8, NC(4)
            Output conv2d_fsq/output_layer2 UINT16, NHWC(1x25x8)
"""

SAMPLE_NMS = """\
Architecture HEF was compiled for: HAILO8L
Network group name: yolov8n, Single Context
    Network name: yolov8n/yolov8n
        Stream infos:
            Input  yolov8n/input_layer1 NHWC(640x640x3)
        VStream infos:
            Input  yolov8n/input_layer1 UINT8, NHWC(640x640x3)
            Output yolov8n/yolov8_nms_postprocess FLOAT32, HAILO NMS BY CLASS(number of classes: 80, \
maximum bounding boxes per class: 100, maximum frame size: 160320)
            Operation:
                Op YOLOV8
                Name: YOLOV8-Post-Process
                Score threshold: 0.200
"""

# HailoRT 5.x prints the compatible architectures instead, and a blank line between network groups.
SAMPLE_HAILORT5 = """\
HEF Compatible for: HAILO15H, HAILO10H

Network group name: prefill, Multi Context - Number of contexts: 12
    Network name: prefill/prefill
        VStream infos:
            Input  prefill/input_layer1 UINT16, FCR(1x96x1536)
            Output prefill/conv1 UINT8, NHWC(1x1x37984)

Network group name: decode, Multi Context - Number of contexts: 9
    Network name: decode/decode
        VStream infos:
            Input  decode/input_layer1 UINT8, NHWC(1x1x1536)
            Output decode/conv2 UINT8, NHWC(1x1x37984)
"""


def test_parse_hailortcli_output_hailo8() -> None:
    parsed = parse_hailortcli_output(SAMPLE_HAILO8)
    assert parsed["architecture"] == "HAILO8"
    assert parsed["network_groups"] == ["conv2d_fsq"]
    assert parsed["contexts"] == {"conv2d_fsq": 1}
    assert parsed["networks"] == ["conv2d_fsq/conv2d_fsq"]
    assert parsed["inputs"] == [
        {
            "name": "conv2d_fsq/input_layer1",
            "type": "UINT8",
            "format": "NHWC",
            "shape": [2, 100, 9],
            "network_group": "conv2d_fsq",
        }
    ]
    assert [(o["name"], o["type"], o["format"], o["shape"]) for o in parsed["outputs"]] == [
        ("conv2d_fsq/output_layer1", "UINT8", "NC", [4]),
        ("conv2d_fsq/output_layer2", "UINT16", "NHWC", [1, 25, 8]),
    ]


def test_parse_hailortcli_output_nms_single_context_and_stream_section() -> None:
    parsed = parse_hailortcli_output(SAMPLE_NMS)
    assert parsed["architecture"] == "HAILO8L"
    assert parsed["contexts"] == {"yolov8n": 1}
    assert [i["shape"] for i in parsed["inputs"]] == [[640, 640, 3]]  # the Stream infos line is not a vstream
    (output,) = parsed["outputs"]
    assert (output["type"], output["format"], output["shape"]) == ("FLOAT32", "HAILO NMS BY CLASS", None)


def test_parse_hailortcli_output_hailort5_compatible_list() -> None:
    parsed = parse_hailortcli_output(SAMPLE_HAILORT5)
    assert parsed["architecture"] == "HAILO15H"
    assert parsed["compatible_architectures"] == ["HAILO15H", "HAILO10H"]
    assert parsed["network_groups"] == ["prefill", "decode"]
    assert parsed["contexts"] == {"prefill": 12, "decode": 9}
    inputs = [(i["network_group"], i["type"]) for i in parsed["inputs"]]
    assert inputs == [("prefill", "UINT16"), ("decode", "UINT8")]


def test_parse_hailortcli_output_older_group_line() -> None:
    parsed = parse_hailortcli_output("Network group name: net (Multi Context)\n    Network name: net/net\n")
    assert parsed["network_groups"] == ["net"]
    assert parsed["contexts"] == {"net": None}
    assert parsed["architecture"] is None


def test_parse_hailortcli_output_whole_result() -> None:
    parsed = parse_hailortcli_output(SAMPLE_HAILO8)
    assert set(parsed) == {
        "architecture",
        "compatible_architectures",
        "network_groups",
        "contexts",
        "networks",
        "inputs",
        "outputs",
    }
    assert parsed["compatible_architectures"] == ["HAILO8"]
    older = parse_hailortcli_output("Network group name: net (Single Context)\n")
    assert older["compatible_architectures"] == [] and older["contexts"] == {"net": 1}


def test_parse_hailortcli_output_streams_outside_any_group_or_section() -> None:
    """Vstream lines before any group or section header still count, with no network group."""
    parsed = parse_hailortcli_output(
        "Architecture HEF was compiled for: hailo8l\n"
        "Input net/input_layer1 UINT8, NHWC(2x100x9)\n"
        "Output net/out UINT8, NC\n"
        "Output net/bare\n"
    )
    assert parsed["architecture"] == "HAILO8L" and parsed["compatible_architectures"] == ["HAILO8L"]
    assert parsed["inputs"] == [
        {
            "name": "net/input_layer1",
            "type": "UINT8",
            "format": "NHWC",
            "shape": [2, 100, 9],
            "network_group": None,
        }
    ]
    assert parsed["outputs"] == [
        {"name": "net/out", "type": "UINT8", "format": "NC", "shape": None, "network_group": None},
        {"name": "net/bare", "type": None, "format": None, "shape": None, "network_group": None},
    ]


def test_parse_hailortcli_output_empty_compatible_list() -> None:
    parsed = parse_hailortcli_output("HEF Compatible for: , \nNetwork group name: net, Single Context\n")
    assert parsed["architecture"] is None and parsed["compatible_architectures"] == []
    assert parsed["network_groups"] == ["net"]


def test_parse_hailortcli_output_only_vstreams_are_streams() -> None:
    """Stream infos and Operation sections list no vstreams, even in the vstream line format; a stream line
    right under a network name (no section header) is one."""
    parsed = parse_hailortcli_output(
        "Architecture HEF was compiled for: HAILO8\n"
        "Network group name: net, Single Context\n"
        "    Network name: net/net\n"
        "        Input net/direct UINT8, NHWC(1x2x3)\n"
        "        Stream infos:\n"
        "            Input net/stream UINT8, NHWC(1x2x3)\n"
        "        VStream infos:\n"
        "            Output net/vstream UINT8, NC(4)\n"
        "            Operation:\n"
        "                Output net/op FLOAT32, NC(4)\n"
    )
    assert [i["name"] for i in parsed["inputs"]] == ["net/direct"]
    assert [o["name"] for o in parsed["outputs"]] == ["net/vstream"]
    assert {i["network_group"] for i in parsed["inputs"] + parsed["outputs"]} == {"net"}


def test_parse_hailortcli_output_quotes_at_most_200_characters_of_unknown_text() -> None:
    text = "x" * 199 + "yz" + "w" * 100
    with pytest.raises(HefError) as info:
        parse_hailortcli_output(text)
    assert str(info.value) == f"unrecognised `hailortcli parse-hef` output: {text[:200]!r}"


def test_device_accepts_unknown_device_lists_the_known_ones() -> None:
    with pytest.raises(HefError) as info:
        device_accepts("hailo9", "HAILO8")
    assert str(info.value) == "unknown Hailo device 'hailo9' (known: hailo8, hailo8l)"


@pytest.mark.parametrize("text", ["", "Segmentation fault\n", "usage: hailortcli [OPTIONS]"])
def test_parse_hailortcli_output_rejects_unrecognised_text(text: str) -> None:
    with pytest.raises(HefError, match="unrecognised"):
        parse_hailortcli_output(text)


# --- running a (fake) hailortcli --------------------------------------------------------------------

needs_posix_shell = pytest.mark.skipif(sys.platform == "win32", reason="the fake hailortcli is a sh script")


@pytest.fixture
def fake_hailortcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]))

    def install(script: str) -> Path:
        tool = bin_dir / "hailortcli"
        tool.write_text("#!/bin/sh\n" + script)
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
        return tool

    return install


@needs_posix_shell
def test_run_parse_hef_parses_the_tool_output(fake_hailortcli: Callable[[str], Path], tmp_path: Path) -> None:
    (tmp_path / "sample.txt").write_text(SAMPLE_HAILO8)
    sample = tmp_path / "sample.txt"
    tool = fake_hailortcli(f'[ "$1" = parse-hef ] && [ -f "$2" ] || exit 3\ncat "{sample}"\n')
    assert find_hailortcli() == str(tool)
    parsed = run_parse_hef(tmp_path / "sample.txt")
    assert parsed["architecture"] == "HAILO8"
    assert parsed["inputs"][0]["shape"] == [2, 100, 9]


@needs_posix_shell
def test_run_parse_hef_failure_carries_stderr(fake_hailortcli: Callable[[str], Path]) -> None:
    fake_hailortcli('echo "[HailoRT] [error] HEF file is corrupted" >&2\nexit 1\n')
    with pytest.raises(HefError, match=r"failed \(exit 1\): \[HailoRT\] \[error\] HEF file is corrupted"):
        run_parse_hef("model.hef")


@needs_posix_shell
def test_run_parse_hef_timeout(fake_hailortcli: Callable[[str], Path]) -> None:
    fake_hailortcli("exec sleep 5\n")
    with pytest.raises(HefError, match="timed out"):
        run_parse_hef("model.hef", timeout=0.2)


def test_run_parse_hef_without_hailortcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_hailortcli() is None
    with pytest.raises(
        HefError, match=r"^hailortcli is not on PATH \(it comes with HailoRT\); cannot run parse-hef$"
    ):
        run_parse_hef("model.hef")


@needs_posix_shell
def test_run_parse_hef_failure_without_stderr(fake_hailortcli: Callable[[str], Path]) -> None:
    fake_hailortcli("echo 'HEF file is corrupted'\nexit 2\n")
    with pytest.raises(HefError) as info:
        run_parse_hef("model.hef")
    assert str(info.value) == "hailortcli parse-hef model.hef failed (exit 2): HEF file is corrupted"
    fake_hailortcli("exit 4\n")
    with pytest.raises(HefError) as info:
        run_parse_hef("model.hef")
    assert str(info.value) == "hailortcli parse-hef model.hef failed (exit 4): no output"


@needs_posix_shell
def test_run_parse_hef_failure_keeps_the_end_of_long_stderr(fake_hailortcli: Callable[[str], Path]) -> None:
    fake_hailortcli(
        "printf 'a%.0s' $(seq 1 1000) >&2\nprintf 'b%.0s' $(seq 1 1999) >&2\necho c >&2\nexit 1\n"
    )
    with pytest.raises(HefError) as info:
        run_parse_hef("model.hef")
    assert str(info.value) == "hailortcli parse-hef model.hef failed (exit 1): " + "b" * 1999 + "c"


@needs_posix_shell
def test_run_parse_hef_tool_that_cannot_start(fake_hailortcli: Callable[[str], Path]) -> None:
    tool = fake_hailortcli("")
    tool.write_text("#!/nonexistent/interpreter\n")
    with pytest.raises(HefError) as info:
        run_parse_hef("model.hef")
    assert str(info.value).startswith(f"cannot run {tool}: [Errno 2] No such file or directory")


# --- fuzzing: parse or HefError, nothing else --------------------------------------------------------

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def read_bytes_or_hef_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fuzz.hef")
        with open(path, "wb") as stream:
            stream.write(data)
        try:
            assert isinstance(read_hef(path), HefInfo)
        except HefError:
            pass


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=120),
        st.builds(
            lambda v, n, rest: HEF_MAGIC + struct.pack(">II", v, n) + rest,
            st.integers(0, 4),
            st.integers(0, 300),
            st.binary(max_size=200),
        ),
    )
)
def test_fuzz_random_bytes(data: bytes) -> None:
    read_bytes_or_hef_error(data)


@FUZZ
@given(st.sampled_from(VERSIONS), st.binary(max_size=300))
def test_fuzz_random_proto_with_valid_hashes(version: int, proto: bytes) -> None:
    read_bytes_or_hef_error(factory.wrap(version, proto))


MUTATIONS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4)


def mutate(data: bytes, mutations: list[tuple[int, int]], cut: int | None) -> bytes:
    mutable = bytearray(data)
    for index, byte in mutations:
        mutable[index % len(mutable)] = byte
    return bytes(mutable[:cut])


@FUZZ
@given(st.sampled_from(VERSIONS), MUTATIONS, st.none() | st.integers(0, 2_000))
def test_fuzz_mutated_proto_with_valid_hashes(
    version: int, mutations: list[tuple[int, int]], cut: int | None
) -> None:
    read_bytes_or_hef_error(factory.wrap(version, mutate(factory.proto_body(), mutations, cut)))


@FUZZ
@given(st.sampled_from(VERSIONS), MUTATIONS, st.none() | st.integers(0, 2_000))
def test_fuzz_mutated_hef(version: int, mutations: list[tuple[int, int]], cut: int | None) -> None:
    read_bytes_or_hef_error(mutate(factory.make_hef(version), mutations, cut))
