"""The HEF checks of `--target hailo` judge the HEF file in the bundle, not what metadata.json says about it.

Each bundle here had a good HEF attached (metadata.json then records HAILO8P and the kit's network), after
which the file was swapped for another HEF and the bundle re-sealed: the checks must read the swapped file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.targets.hailo.attach import attach_hef
from tests.conftest import reseal, run_one_check
from tests.hef_factory import make_hef

HEF = "models/hailo.hef"
REAL_HEF_NETWORK = "x_feature_13_without_pixel_unshuffle_normilize_softmax_slice_224_320_sim"  # its README


def _swap_hef_after_attach(bundle: Path, tmp_path: Path, hef: bytes) -> None:
    good = tmp_path / "good.hef"
    good.write_bytes(make_hef(3, hw_arch_id=1, net_name="conv2d_fsq"))
    attach_hef(Bundle(bundle), good)
    (bundle / HEF).write_bytes(hef)
    reseal(bundle)


@pytest.mark.parametrize(("arch_id", "arch"), [(103, "HAILO15H"), (5, "HAILO10H")])
def test_hef_for_another_architecture_fails(
    bundle_copy: Path, tmp_path: Path, run_checks: Any, arch_id: int, arch: str
) -> None:
    """A HEF compiled for a device the configured hailo8 cannot run. Guards against a check that reads the
    architecture from metadata.json (HAILO8P from the attach) instead of the HEF's own header."""
    _swap_hef_after_attach(bundle_copy, tmp_path, make_hef(3, hw_arch_id=arch_id, net_name="conv2d_fsq"))
    outcome, message, report = run_one_check(
        run_checks, bundle_copy, "hailo", "test_hailo.py::test_hef_architecture"
    )
    assert outcome == "failed" and report["verdict"] == "failed"
    assert message == (
        f"{HEF} was compiled for {arch}: a hailo8 device does not accept a HEF compiled for {arch} "
        "(configured hw_arch hailo8)"
    )


@pytest.mark.parametrize("source", ["synthesized", "real"])
def test_hef_of_another_network_fails(
    bundle_copy: Path, tmp_path: Path, run_checks: Any, request: pytest.FixtureRequest, source: str
) -> None:
    """A HEF for the right device but compiled from another network (a synthesized one, and the real DFC
    3.27 HEF of a keypoint network). Guards against a network-name check that accepts any network group."""
    if source == "real":
        real: Path = request.getfixturevalue("real_hef")
        hef, other = real.read_bytes(), REAL_HEF_NETWORK
    else:
        hef, other = make_hef(0, hw_arch_id=1, net_name="yolov8n"), "yolov8n"
    _swap_hef_after_attach(bundle_copy, tmp_path, hef)
    outcome, message, report = run_one_check(
        run_checks, bundle_copy, "hailo", "test_hailo.py::test_hef_network_name"
    )
    assert outcome == "failed" and report["verdict"] == "failed"
    assert message == (
        f"{HEF} holds network groups [{other!r}], not the kit's --net-name 'conv2d_fsq': "
        "it was compiled from another model"
    )
