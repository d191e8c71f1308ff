"""`pytest checks --bundle B` general checks, one breakage each, asserted on that check's own outcome."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.conftest import run_one_check


def test_bundle_under_another_hash_directory_fails(
    example_bundle: Path, tmp_path: Path, run_checks: Any
) -> None:
    """An intact bundle copied under another 12-hex name: a lookup by that hash would hand out a model whose
    config and weights hash to something else. Guards against the EXP_HASH-vs-directory check being off
    (every file still matches MANIFEST.json, so no other general check notices)."""
    other = "".join(reversed(example_bundle.name))
    assert other != example_bundle.name
    bundle = tmp_path / "artifacts" / other
    shutil.copytree(example_bundle, bundle)
    outcome, message, _ = run_one_check(
        run_checks, bundle, "general", "test_general.py::test_exp_hash_matches_directory"
    )
    assert outcome == "failed"
    assert message == f"metadata.json exp_hash {example_bundle.name} != directory name {other}"
