"""``attach-hef``: put a HEF compiled from the bundle's kit into the bundle, checked first, then re-sealed.

Before anything is written: the bundle must verify against its MANIFEST (re-sealing must never launder a
tampered bundle), the file must be a HEF whose integrity hash holds (:func:`conv2d_bundle.targets.hailo.hef.read_hef`),
compiled for an architecture the configured device accepts, with the kit's ``--net-name`` among its network
groups. With ``emulator_outputs`` (the ``emulator_outputs.npz`` compile.sh writes: the DFC's quantized
emulator on the golden inputs), that file must hold every device output of the kit, one finite float row per
golden window; it is sealed in as ``models/hailo/emulator_outputs.npz``. A HEF attached without it drops the
previous one: emulator outputs describe the compile they came from. Then the files, metadata.json, the
generated docs and MANIFEST.json are written under temporary names and renamed into place (MANIFEST last).
On any refusal the bundle is byte-for-byte untouched.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle import docs as bundle_docs
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, BundleManifest
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import BundleIntegrityError, HefError
from conv2d_bundle.targets.hailo import EMULATOR_FILE, HEF_FILE
from conv2d_bundle.targets.hailo.hef import HefInfo, device_accepts, read_hef

DOCS = {
    "docs/README.md": bundle_docs.readme,
    "docs/deployment_guide.md": bundle_docs.deployment_guide,
    "docs/api_reference.md": bundle_docs.api_reference,
}


@dataclass(frozen=True)
class AttachResult:
    bundle_dir: Path
    hef: HefInfo
    replaced: bool
    warnings: list[str] = field(default_factory=list)


def attach_hef(
    bundle: Bundle,
    hef_path: str | os.PathLike[str],
    emulator_outputs: str | os.PathLike[str] | None = None,
) -> AttachResult:
    """Check ``hef_path`` (and ``emulator_outputs``) against ``bundle`` and seal it in as ``models/hailo.hef``;
    HefError when refused."""
    root = bundle.bundle_dir
    source = Path(hef_path)
    if not source.is_file():
        raise HefError(f"{source}: no such file")
    metadata = dict(bundle.metadata)
    hailo = metadata.get("formats", {}).get("hailo")
    if not isinstance(hailo, dict) or not hailo.get("net_name"):
        raise HefError(f"bundle {root.name} has no Hailo compile kit (it was built without the hailo format)")
    diff = BundleManifest.load(root).verify(root)
    if not diff.ok:
        raise BundleIntegrityError(
            f"bundle {root.name} does not match its {MANIFEST_NAME} ({diff.describe()}): not re-sealing it"
        )
    data = source.read_bytes()  # checked and written from these same bytes: no window to swap the file
    with tempfile.TemporaryDirectory(prefix="conv2d-attach-") as tmp:
        snapshot = Path(tmp) / source.name
        snapshot.write_bytes(data)
        info = read_hef(snapshot)
    hw_arch = str(hailo.get("hw_arch") or bundle.config.hailo_options.get("hw_arch", "hailo8"))
    ok, note = device_accepts(hw_arch, info.hw_arch)
    if not ok:
        raise HefError(
            f"{source.name}: compiled for {info.hw_arch}, but the bundle is configured for {hw_arch}: {note}"
        )
    net = hailo["net_name"]
    if net not in info.network_groups:
        raise HefError(
            f"{source.name}: network groups {list(info.network_groups)} do not include the kit's --net-name "
            f"{net!r}: this HEF was compiled from another network"
        )
    emulator = _read_emulator(Path(emulator_outputs), hailo, root) if emulator_outputs is not None else None
    replaced = (root / HEF_FILE).exists()
    new_hailo = {k: v for k, v in hailo.items() if k not in ("reason", "emulator")}
    new_hailo.update(
        status="built",
        file=HEF_FILE,
        source="attached",
        hef_hw_arch=info.hw_arch,
        sdk_version=info.sdk_version,
        hef_header_version=info.header_version,
        size_bytes=len(data),
        file_size_mb=round(len(data) / 2**20, 3),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    files: dict[str, bytes] = {HEF_FILE: data}
    removed: list[str] = []
    if emulator is not None:
        emulator_bytes, record = emulator
        files[EMULATOR_FILE] = emulator_bytes
        new_hailo["emulator"] = record
    elif (root / EMULATOR_FILE).exists():
        removed.append(EMULATOR_FILE)  # from an earlier compile: not evidence about this HEF
    metadata["formats"] = {**metadata["formats"], "hailo": new_hailo}
    files["metadata.json"] = atomic.dumps_json(metadata).encode()
    for rel, render in DOCS.items():
        if (root / rel).exists():
            files[rel] = render(metadata).encode("utf-8")
    _replace_and_seal(root, files, BundleManifest.load(root), removed)
    return AttachResult(root, info, replaced, [note] if note else [])


def _read_emulator(source: Path, hailo: dict[str, Any], root: Path) -> tuple[bytes, dict[str, Any]]:
    """The emulator outputs' bytes and their metadata record, once they are known to fit the kit."""
    import numpy as np

    if not source.is_file():
        raise HefError(f"{source}: no such file (the emulator outputs compile.sh writes)")
    data = source.read_bytes()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise HefError(f"{source.name}: not a readable .npz of arrays: {exc}") from exc
    try:
        windows = int(np.load(root / "reference" / "inputs.npy", mmap_mode="r", allow_pickle=False).shape[0])
    except (OSError, ValueError) as exc:
        raise HefError(f"bundle {root.name}: reference/inputs.npy cannot be read: {exc}") from exc
    wanted = list(hailo.get("device_outputs") or [])
    problems = [f"no {name}" for name in wanted if name not in arrays]
    for name in (n for n in wanted if n in arrays):
        a = arrays[name]
        if a.dtype.kind != "f":
            problems.append(f"{name} is {a.dtype}, not float")
        elif a.ndim < 1 or a.shape[0] != windows:
            problems.append(f"{name} has {a.shape[0] if a.ndim else 0} rows, the golden inputs {windows}")
        elif not np.isfinite(a).all():
            problems.append(f"{name} holds NaN or infinite values")
    if problems:
        raise HefError(
            f"{source.name}: not the kit's emulator outputs on the golden inputs ({'; '.join(problems)}; "
            f"expected the device outputs {wanted}, {windows} rows each)"
        )
    record = {
        "file": EMULATOR_FILE,
        "source": "attached",
        "outputs": sorted(arrays),
        "windows": windows,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return data, record


def _replace_and_seal(
    root: Path, files: dict[str, bytes], manifest: BundleManifest, removed: list[str] | None = None
) -> None:
    """Write every file under a temporary name, then rename them into place and MANIFEST.json last; files in
    ``removed`` leave the MANIFEST and are deleted after it (a crash in between leaves an extra file, which
    verify reports, never a MANIFEST entry without its file)."""
    entries: dict[str, Any] = {k: v for k, v in manifest.files.items() if k not in (removed or [])}
    for rel, data in files.items():
        entries[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    files = {**files, MANIFEST_NAME: atomic.dumps_json(BundleManifest(entries).to_json()).encode()}
    staged: list[tuple[Path, Path]] = []
    try:
        for rel, data in files.items():
            target = root / rel
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged.append((Path(name), target))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(name, 0o644)
        for temp, final in staged:
            os.replace(temp, final)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    for rel in removed or []:
        (root / rel).unlink(missing_ok=True)
    shutil.rmtree(root / "validation", ignore_errors=True)  # reports about the bundle before the HEF
