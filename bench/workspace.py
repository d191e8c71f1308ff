"""What the rows run against, generated on the fly in a temporary directory: the example bundle, scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from types import TracebackType

from bench.timing import BenchError, conv2d_cmd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "examples" / "dogs.yaml"
EXAMPLE_MODEL = ROOT / "examples" / "conv2d_fsq.pt"


class Workspace:
    """A temporary directory holding the example bundle (built once, ONNX only) and helper scripts."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="conv2d-bench-"))
        self._bundle: Path | None = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def bundle(self) -> Path:
        """The example bundle, ONNX only, under ``<root>/artifacts/<hash>``."""
        if self._bundle is None:
            out = subprocess.run(
                conv2d_cmd(
                    "pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL),
                    "--output-dir", str(self.root / "artifacts"), "--formats", "onnx", "--json",
                ),
                capture_output=True,
                text=True,
                check=False,
            )  # fmt: skip
            if out.returncode != 0:
                raise BenchError(f"creating the example bundle failed: {out.stderr.strip()[-400:]}")
            self._bundle = Path(json.loads(out.stdout.strip().splitlines()[-1])["bundle_dir"])
        return self._bundle

    def script(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def scratch(self, name: str) -> Path:
        """A fresh, empty directory under the workspace."""
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path
