"""Promise 4, end to end through the CLI: a pickle that would run code is refused and runs none; a YAML
alias bomb and a 50 MB config are refused with a clear message, without exhausting memory."""

from __future__ import annotations

import pickle
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG, conv2d


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _create(config: Path, model: Path, out: Path, *extra: str) -> tuple[int, list[str]]:
    p = conv2d(
        "pack",
        "create",
        "--config",
        str(config),
        "--model",
        str(model),
        "--output-dir",
        str(out),
        "--formats",
        "onnx",
        *extra,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, [line for line in p.stderr.splitlines() if line.startswith("error:")]


def test_code_running_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"weights": _Payload(marker)}, f)
    code, errors = _create(EXAMPLE_CONFIG, evil, tmp_path / "out")
    assert code == 2 and len(errors) == 1 and "--allow-pickle" in errors[0]
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not [
        p for p in (tmp_path / "out").iterdir() if p.name != ".conv2d"
    ]


def test_alias_bomb_config(tmp_path: Path) -> None:
    lines = ["training:", '  a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"  {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    code, errors = _create(bomb, tmp_path / "absent.pt", tmp_path / "out")
    assert code == 2 and len(errors) == 1 and "aliases are not allowed" in errors[0]


def test_fifty_megabyte_config(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.write(b"name: big\n")
        f.truncate(50 * 2**20)
    code, errors = _create(big, tmp_path / "absent.pt", tmp_path / "out")
    assert code == 2 and len(errors) == 1 and "the limit is" in errors[0]
