"""The target registry: the one list of targets that the CLI, the plugin and the config all read."""

from __future__ import annotations

import argparse

import click
import pytest

from conv2d_bundle import targets
from conv2d_bundle.cli.options import TargetList
from conv2d_bundle.errors import BundleError
from conv2d_bundle.verify.plugin import parse_targets


def test_builtin_targets_in_order_with_their_formats() -> None:
    assert targets.target_names()[:3] == ("onnx", "ios", "hailo")
    assert targets.format_names()[:3] == ("onnx", "coreml", "hailo")
    assert targets.by_format("coreml").name == "ios"
    with pytest.raises(BundleError, match="unknown format 'tflite'"):
        targets.by_format("tflite")


@pytest.mark.parametrize("value", ["onnx", "onnx,ios", " hailo , onnx ", "all", "general"])
def test_cli_and_plugin_accept_the_same_target_lists(value: str) -> None:
    expected = ",".join(dict.fromkeys(v.strip() for v in value.split(",")))
    assert TargetList().convert(value, None, None) == expected == parse_targets(value)


def test_unknown_target_names_the_known_ones_in_cli_and_plugin() -> None:
    with pytest.raises(click.BadParameter, match=r"unknown target android .*onnx, ios, hailo"):
        TargetList().convert("onnx,android", None, None)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown target android"):
        parse_targets("android")


def test_selected_targets_follow_the_registry_order() -> None:
    assert targets.selected(["hailo", "onnx"]) == ["onnx", "hailo"]
    assert targets.selected(["all"]) == list(targets.target_names())
    assert targets.selected(["general"]) == []


def test_capability_says_why_a_runner_cannot_execute_here() -> None:
    import platform

    ios = targets.get_target("ios").capability()
    if platform.system() != "Darwin":
        assert not ios.executes
        assert ios.reason in ("Core ML prediction needs macOS", targets.get_target("ios").exportable())
    assert targets.get_target("onnx").capability().executes
    assert targets.get_target("hailo").capability().executes
