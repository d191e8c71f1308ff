"""hypothesis_storage.isolate: hypothesis's storage is a temporary directory until undone, then as before."""

from __future__ import annotations

import os

from hypothesis.configuration import storage_directory

from conv2d_bundle.verify import hypothesis_storage


def test_isolate_then_undo_restores_the_previous_storage() -> None:
    before = storage_directory(intent_to_write=False).home_directory
    env_before = os.environ.get(hypothesis_storage.ENV)
    undo = hypothesis_storage.isolate()
    scratch = storage_directory(intent_to_write=False).home_directory
    try:
        assert scratch != before and scratch.is_dir() and not list(scratch.iterdir())
        assert os.environ[hypothesis_storage.ENV] == str(scratch)
    finally:
        undo()
    assert storage_directory(intent_to_write=False).home_directory == before
    assert os.environ.get(hypothesis_storage.ENV) == env_before
    assert not scratch.exists()
