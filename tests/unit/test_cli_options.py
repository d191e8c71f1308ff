"""The CLI's --target choices are the plugin's targets (kept apart so the CLI need not import pytest)."""

from conv2d_bundle.cli_options import TARGET_CHOICES
from conv2d_bundle.pytest_plugin import KNOWN_TARGETS


def test_cli_targets_match_the_plugin() -> None:
    assert tuple(TARGET_CHOICES) == tuple(KNOWN_TARGETS)
