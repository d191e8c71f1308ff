"""The bundle's generated docs say what the checks do."""

from __future__ import annotations

from conv2d_bundle.bundle import docs as bundle_docs

META = {
    "schema_version": 1,
    "model": {
        "name": "dogs_v1",
        "input_name": "imu_input",
        "input_shape": [1, 9, 2, 100],
        "outputs": [
            {"name": "behavioral_codes", "dtype": "int64", "kind": "codes", "atol": 1e-5, "rtol": 1e-5},
            {"name": "confidence", "dtype": "float32", "kind": "probabilities", "atol": 1e-5, "rtol": 2e-6},
        ],
    },
}


def test_api_reference_says_integer_outputs_are_compared_exactly() -> None:
    text = bundle_docs.api_reference(META)
    assert "- `behavioral_codes` (int64, codes): integers, compared exactly (no tolerance)\n" in text
    assert "- `confidence` (float32, probabilities): parity atol 1e-05, rtol 2e-06\n" in text
