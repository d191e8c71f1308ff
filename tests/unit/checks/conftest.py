"""Fixtures for the direct check tests: the example bundle read-only, and values taken from it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle.store import Bundle


@pytest.fixture(scope="session")
def example(example_bundle: Path) -> Bundle:
    """The example bundle (read-only: a test that breaks files takes ``bundle_copy``)."""
    return Bundle(example_bundle)


@pytest.fixture
def metadata(example: Bundle) -> dict[str, Any]:
    """A private, editable copy of the example's metadata.json."""
    return copy.deepcopy(dict(example.metadata))


@pytest.fixture(scope="session")
def model_spec(example: Bundle) -> Any:
    return example.config.model
