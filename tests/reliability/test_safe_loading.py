"""Promise 4, end to end through the CLI: a pickle that would run code is refused and runs none; a YAML
alias bomb and a 50 MB config are refused with a clear message, without exhausting memory."""

from __future__ import annotations

import pickle
import shutil
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


def _alias_bomb(levels: int = 9) -> str:
    lines = ["training:", '  a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"  {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_through_import_and_compare(bundle_copy: Path, tmp_path: Path) -> None:
    """A small archive whose config.yaml is an alias bomb (re-sealed, so only the YAML stands in the way):
    before the fix `import` ran 18 s and took 940 MB with plain yaml.safe_load. Refused at once, nothing left."""
    import tarfile
    import time

    from tests.conftest import reseal

    (bundle_copy / "config.yaml").write_text(_alias_bomb())
    reseal(bundle_copy)
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle_copy, arcname=f"bomb-{bundle_copy.name}")
    into = tmp_path / "imported"
    start = time.monotonic()
    p = conv2d("pack", "import", str(archive), "--output-dir", str(into))
    elapsed = time.monotonic() - start
    assert p.returncode == 2 and "aliases are not allowed" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and elapsed < 10  # the CLI's start-up included
    assert [x.name for x in into.iterdir()] == []  # no temporary extraction left behind

    other = bundle_copy.parent / ("f" * 12)
    shutil.copytree(bundle_copy, other)
    c = conv2d("pack", "compare", str(bundle_copy), str(other))
    assert c.returncode == 2 and "aliases are not allowed" in c.stderr, c.stderr
