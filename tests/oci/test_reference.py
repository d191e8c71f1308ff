"""``oci://`` references: what parses, and what is refused with a reason."""

from __future__ import annotations

import pytest

from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.reference import OciRef, parse_ref
from conv2d_bundle.verify.evidence import referrers_tag

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci://127.0.0.1:5000/team/dogs:v1", OciRef("127.0.0.1:5000", "team/dogs", "v1")),
        ("oci://reg.example.com/team/dogs", OciRef("reg.example.com", "team/dogs")),
        (f"oci://localhost:5000/team/dogs@{DIGEST}", OciRef("localhost:5000", "team/dogs", None, DIGEST)),
        (f"oci://[::1]:5000/a/b-c_d.e:v1.2@{DIGEST}", OciRef("[::1]:5000", "a/b-c_d.e", "v1.2", DIGEST)),
    ],
)
def test_parses(text: str, expected: OciRef) -> None:
    ref = parse_ref(text)
    assert ref == expected and str(ref) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("docker://x/y", "not a registry reference"),
        ("oci:///team/dogs", "registry host"),
        ("oci://host:5000", "no repository"),
        ("oci://host/Team/Dogs:v1", "not a valid repository"),
        ("oci://host/team/dogs:-v1", "not a valid tag"),
        ("oci://host/team/dogs@sha256:abc", "not a sha256"),
    ],
)
def test_refuses(text: str, why: str) -> None:
    with pytest.raises(RegistryError, match=why):
        parse_ref(text)


def test_the_referrers_tag_of_a_digest() -> None:
    assert referrers_tag(DIGEST) == "sha256-" + "ab" * 32
    assert (
        parse_ref(f"oci://h/r@{DIGEST}").reference == DIGEST and parse_ref("oci://h/r").reference == "latest"
    )
