"""Create bundles: export every format, write the golden reference and provenance, seal, rename into place.

A bundle is built in a hidden temporary sibling directory (``.tmp-<hash>-*``) and renamed to
``<EXP_HASH>`` only when complete and sealed, so a crash or a failed export leaves nothing that looks
like a bundle. torch is imported here (creating needs the model); reading and verifying do not.

EXP_HASH covers the config and the weights, not the toolchain: a ``--force`` rebuild (after a torch, onnx or
coremltools upgrade, say) may give other bytes under the same name. It replaces the old bundle in one step and
says what changed (:class:`~conv2d_bundle.bundle.placement.ContentChange`): reports and evidence about the old content
do not carry over.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from conv2d_bundle import targets
from conv2d_bundle.bundle import atomic, provenance
from conv2d_bundle.bundle import docs as bundle_docs
from conv2d_bundle.bundle.digest import experiment_hash, sha256_file
from conv2d_bundle.bundle.locks import build_lock
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, BundleManifest
from conv2d_bundle.bundle.placement import ContentChange, files_that_differ, replace_dir
from conv2d_bundle.bundle.reference import (
    INPUTS_FILE,
    OUTPUTS_FILE,
    coverage,
    describe_degenerate,
    make_reference,
    onnx_test_data,
    save_npy,
    save_npz,
)
from conv2d_bundle.bundle.store import (
    METADATA_SCHEMA_VERSION,
    Bundle,
    default_artifacts_dir,
    get_bundle,
    list_bundles,
)
from conv2d_bundle.bundle.taps import TAPS_FILE, TAPS_INDEX
from conv2d_bundle.config import (
    ExperimentConfig,
    ReferenceInputs,
    load_config,
    load_reference_inputs,
    parse_config,
    parse_formats,
)
from conv2d_bundle.errors import (
    BundleError,
    BundleIntegrityError,
    BundleWarning,
    ConfigError,
    ExportError,
    MissingExtraError,
)

log = logging.getLogger(__name__)
STAGING_PREFIX = ".tmp-"
Progress = Callable[[str], None]


@dataclass
class BuildContext:
    """What every format exporter needs, and where it records what it did."""

    model: Any
    config: ExperimentConfig
    exp_hash: str
    staging: Path
    reference: Any
    explicit_formats: bool
    formats: dict[str, dict[str, Any]] = field(default_factory=dict)
    taps: Any = (
        None  # conv2d_bundle.bundle.taps.Taps: the model's intermediate activations on the golden inputs
    )

    def size_entry(self, path: Path) -> dict[str, Any]:
        """``size_bytes`` / ``file_size_mb`` of a file or of every file in a package directory."""
        size = (
            path.stat().st_size
            if path.is_file()
            else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        )
        return {"size_bytes": size, "file_size_mb": round(size / 2**20, 3)}

    def onnx_metadata(self) -> dict[str, str]:
        return {
            "exp_hash": self.exp_hash,
            "labels": json.dumps(list(self.config.labels)),
            "version": provenance.system_version(),
            "producer": "conv2d-bundle",
        }


def available_formats() -> list[str]:
    """Formats a create builds when none are named: those this installation can build (Core ML needs
    coremltools), but for the ones built only when asked for by name (ExecuTorch: its export takes ~20 s)."""
    return [t.format for t in targets.registry().values() if t.default and t.exportable() is None]


class ArtifactBundler:
    """Creates, finds and lists bundles under ``output_base`` (default ``$CONV2D_ARTIFACTS`` or ``artifacts``)."""

    def __init__(self, output_base: str | Path | None = None) -> None:
        self.output_base = Path(output_base) if output_base is not None else default_artifacts_dir()

    def get_bundle(self, ref: str) -> Bundle:
        return get_bundle(self.output_base, ref)

    def list_bundles(self) -> list[Bundle]:
        return list_bundles(self.output_base)

    def create_bundle(
        self,
        config: ExperimentConfig | Mapping[str, Any] | str | Path,
        model_path: str | Path | None = None,
        *,
        model: Any = None,
        metrics: Mapping[str, float] | None = None,
        exp_name: str | None = None,
        formats: Sequence[str] | str | None = None,
        force: bool = False,
        allow_pickle: bool = False,
        progress: Progress | None = None,
        on_content_change: Callable[[ContentChange], None] | None = None,
    ) -> Bundle:
        """Build (or find) the bundle of this config + weights. ``bundle.already_existed`` says which. When
        ``force`` replaces a bundle whose content differs, ``on_content_change`` hears how (else it is logged)."""
        say = progress or (lambda msg: log.info("%s", msg))
        cfg = _resolve_config(config, metrics)
        name = _exp_name(exp_name, cfg)
        ref_inputs = load_reference_inputs(cfg)  # real golden windows, hashed like the weights; None: random
        torch_model, weights_sha = _load_weights(cfg, model_path, model, allow_pickle)
        exp_hash = experiment_hash(cfg.data, weights_sha, ref_inputs.sha256 if ref_inputs else None)
        final = self.output_base / exp_hash
        if not force and (found := _existing(final)) is not None:
            return found
        explicit = formats is not None or cfg.formats is not None
        wanted = parse_formats(formats) if formats is not None else list(cfg.formats or available_formats())
        if "onnx" not in wanted:
            wanted.insert(0, "onnx")  # the golden reference and every check start from the ONNX export
        _prepare_output_dir(self.output_base)
        try:
            with build_lock(self.output_base, exp_hash):  # one builder per EXP_HASH across processes
                # built by another process meanwhile
                if not force and (found := _existing(final)) is not None:
                    return found
                change = self._build(
                    cfg,
                    name,
                    torch_model,
                    weights_sha,
                    exp_hash,
                    wanted,
                    explicit,
                    final,
                    force,
                    say,
                    ref_inputs,
                )
        except OSError as exc:  # disk full, permissions, a vanished directory: one clear line, nothing left
            where = f" ({exc.filename})" if exc.filename else ""
            raise BundleError(f"cannot write the bundle: {exc.strerror or exc}{where}") from exc
        if change is not None:
            (on_content_change or (lambda c: log.info("%s: %s", exp_hash, c.describe())))(change)
        return Bundle(final)

    def _build(
        self,
        cfg: ExperimentConfig,
        name: str,
        torch_model: Any,
        weights_sha: str,
        exp_hash: str,
        wanted: list[str],
        explicit: bool,
        final: Path,
        force: bool,
        say: Progress,
        ref_inputs: ReferenceInputs | None = None,
    ) -> ContentChange | None:
        """Build into a staging directory and move it into place; what it changed about a bundle it replaced."""
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{exp_hash}-", dir=self.output_base))
        try:
            os.chmod(staging, 0o755)
            say("writing the golden reference")
            ref_opts = cfg.reference_options
            reference = make_reference(
                torch_model,
                cfg.model,
                num_samples=ref_opts["num_samples"],
                seed=ref_opts["seed"],
                taps=ref_opts.get("taps"),
                source=ref_inputs,
            )
            golden = coverage(
                reference.inputs, reference.outputs, cfg.model, reference.source_entry(), cfg.labels
            )
            if (degenerate := describe_degenerate(golden)) is not None:
                warnings.warn(BundleWarning(degenerate), stacklevel=2)
            atomic.write_bytes(staging / INPUTS_FILE, save_npy(reference.inputs))
            atomic.write_bytes(staging / OUTPUTS_FILE, save_npz(reference.outputs))
            spec = cfg.model
            for relpath, data in onnx_test_data(
                reference.inputs, reference.outputs, spec.input_name, spec.output_names
            ).items():
                atomic.write_bytes(staging / relpath, data)
            taps = reference.taps
            atomic.write_bytes(staging / TAPS_FILE, save_npz(taps.values))
            atomic.write_json(staging / TAPS_INDEX, taps.index())
            ctx = BuildContext(torch_model, cfg, exp_hash, staging, reference, explicit, taps=taps)
            for fmt in wanted:
                say(f"exporting {fmt}")
                try:
                    ctx.formats[fmt] = targets.by_format(fmt).export(ctx)
                except MissingExtraError as exc:
                    ctx.formats[fmt] = {"status": "skipped", "reason": str(exc)}
                    log.warning("%s: skipped: %s", fmt, exc)
                except ExportError as exc:
                    if fmt == "onnx" or explicit:
                        raise  # asked for by name (or the ONNX every check starts from): the create fails
                    ctx.formats[fmt] = {"status": "failed", "reason": str(exc)}
                    warnings.warn(
                        BundleWarning(f"{fmt} export failed, recorded in metadata: {exc}"), stacklevel=2
                    )
                    shutil.rmtree(staging / "models" / fmt, ignore_errors=True)
            _record_not_built(ctx.formats, wanted, explicit)
            metadata = self._write_files(ctx, name, torch_model, weights_sha, reference, golden)
            BundleManifest.build(staging).write(staging)
            say("running the bundle's checks before sealing")
            self._seal_time_validation(staging, metadata, exp_hash, wanted)
            change = _content_change(final, staging) if force else None
            _move_into_place(staging, final, force)
            return change
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _write_files(
        self,
        ctx: BuildContext,
        name: str,
        model: Any,
        weights_sha: str,
        reference: Any,
        golden: Mapping[str, Any],
    ) -> dict:
        cfg, staging = ctx.config, ctx.staging
        labels = {str(i): label for i, label in enumerate(cfg.labels)}
        atomic.write_text(staging / "config.yaml", yaml.safe_dump(dict(cfg.data), sort_keys=True))
        atomic.write_json(staging / "label_map.json", labels)
        atomic.write_json(staging / "metrics.json", dict(cfg.metrics))
        atomic.write_text(staging / "VERSION", provenance.system_version() + "\n")
        commit = provenance.commit_sha()
        atomic.write_text(staging / "COMMIT_SHA", commit + "\n")
        model_meta: dict[str, Any] = {
            "name": cfg.model.name,
            "architecture": cfg.model.display_name,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "input_name": cfg.model.input_name,
            "input_shape": list(cfg.model.input_shape),
            "outputs": [dict(o) for o in cfg.data["model"]["outputs"]],
            "output_classes": len(cfg.labels),
            "weights_sha256": weights_sha,
            "reference": {
                "num_samples": int(reference.inputs.shape[0]),
                "screened": reference.screened,
                "min_rounding_margin": 1e-4 if reference.screened else None,
                "coverage": dict(golden),
            },
        }
        if reference.source is not None:  # hashed into EXP_HASH: recompute_exp_hash reads it from here
            model_meta["reference"]["inputs_sha256"] = reference.source.sha256
        if "accuracy" in cfg.metrics:
            model_meta["accuracy"] = cfg.metrics["accuracy"]
        metadata = {
            "schema_version": METADATA_SCHEMA_VERSION,
            "exp_hash": ctx.exp_hash,
            "exp_name": name,
            "created_at": provenance.utc_now(),
            "created_by": provenance.created_by(),
            "system_version": provenance.system_version(),
            "commit_sha": commit,
            "model": model_meta,
            "labels": labels,
            "formats": ctx.formats,
            "validation": {},
        }
        (staging / "docs").mkdir(exist_ok=True)
        atomic.write_text(staging / "docs" / "README.md", bundle_docs.readme(metadata))
        atomic.write_text(staging / "docs" / "deployment_guide.md", bundle_docs.deployment_guide(metadata))
        atomic.write_text(staging / "docs" / "api_reference.md", bundle_docs.api_reference(metadata))
        atomic.write_json(staging / "metadata.json", metadata)
        return metadata

    def _seal_time_validation(self, staging: Path, metadata: dict, exp_hash: str, formats: list[str]) -> None:
        """Run the general checks and those of each built format on the sealed staging copy; refuse the bundle
        if any fails. The outcome stays in the reports under ``validation/``, bound to these exact bytes: it is
        not written into metadata.json, which would change the bytes the checks were about (and be a claim
        anyone who re-seals could write)."""
        from conv2d_bundle.verify.runner import run_checks

        names = [
            targets.by_format(f).name
            for f in formats
            if metadata["formats"].get(f, {}).get("status") == "built"
        ]
        run = run_checks(staging, names or ["general"], expect_hash=exp_hash, profile="seal")
        verdicts = {t: run.verdict(t) for t in sorted(run.reports)}
        bad = {t: v for t, v in verdicts.items() if not v.passed}
        if bad:
            problems = list(dict.fromkeys(e for v in bad.values() for e in v.errors)) or [
                f"{t}: {v.describe()}" for t, v in bad.items()
            ]
            raise ExportError(
                f"the new bundle fails its own checks ({len(problems)}): " + "; ".join(problems[:5])
            )


def _record_not_built(formats: dict[str, Any], wanted: list[str], explicit: bool) -> None:
    """Every installed target's format that this create did not build, with why: metadata.json then says of
    each format whether it is in the bundle, and ``--target all`` leaves out what was never asked for."""
    for target in targets.registry().values():
        if target.format in formats:
            continue
        why = target.exportable()
        ask = f"--formats {','.join([*wanted, target.format])}"
        if why:
            reason = f"not installed here: {why}"
        elif explicit:
            reason = f"not in the formats asked for ({','.join(wanted)}); {ask} builds it"
        else:
            reason = f"built only when asked for: {ask}"
        formats[target.format] = {"status": targets.NOT_REQUESTED, "reason": reason}


def _resolve_config(config: Any, metrics: Mapping[str, float] | None) -> ExperimentConfig:
    if isinstance(config, str | Path):
        cfg = load_config(config)
    elif isinstance(config, ExperimentConfig):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = parse_config(config)
    else:
        raise ConfigError(
            f"config: expected a path, a mapping or an ExperimentConfig, got {type(config).__name__}"
        )
    if metrics:
        data = dict(cfg.data)
        data["metrics"] = {**data.get("metrics", {}), **metrics}
        cfg = replace(parse_config(data, base_dir=cfg.base_dir), formats=cfg.formats)
    return cfg


def _exp_name(exp_name: str | None, cfg: ExperimentConfig) -> str:
    name = exp_name if exp_name is not None else str(cfg.data.get("name") or cfg.model.name)
    bad = (
        not name
        or len(name) > 128
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
        or not name.isprintable()
    )
    if bad:
        raise ConfigError(f"--name {name!r}: use 1-128 printable characters without '/', '\\' or '..'")
    return name


def _load_weights(cfg: ExperimentConfig, model_path: Any, model: Any, allow_pickle: bool) -> tuple[Any, str]:
    try:  # the first import of torch on the create path
        from conv2d_bundle.models.loading import (
            apply_state_dict,
            build_model,
            load_model,
            outputs_in_config_order,
            state_dict_sha256,
        )
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        raise MissingExtraError(
            "creating a bundle needs torch, which is not installed: pip install 'conv2d-bundle[torch]' "
            "(verifying a bundle does not need it)"
        ) from exc

    if (model_path is None) == (model is None):
        raise ConfigError("give exactly one of model_path (a checkpoint) or model (an nn.Module)")
    if model_path is not None:
        path = Path(model_path)
        loaded = load_model(cfg.model, path, allow_pickle=allow_pickle)
        return outputs_in_config_order(loaded, cfg.model), sha256_file(path)
    fresh = build_model(cfg.model)
    apply_state_dict(fresh, model.state_dict(), source=type(model).__name__)
    return outputs_in_config_order(fresh.eval(), cfg.model), state_dict_sha256(fresh.state_dict())


def _existing(final: Path) -> Bundle | None:
    """The bundle at ``final`` with its metadata read now, or None if there is none or it vanished while being
    read (removed by ``clean``; or replaced by a ``--force`` where no atomic swap exists, whose build lock the
    caller then waits for). A bundle that is there but unreadable is an error, never silently rebuilt."""
    found = Bundle(final)
    try:
        found.metadata  # noqa: B018 - read here, not later by the caller: it may be gone by then
    except BundleIntegrityError:
        if final.exists():
            raise
        return None
    found.already_existed = True
    return found


def _prepare_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output directory {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {path} is not writable")


def _content_change(final: Path, staging: Path) -> ContentChange | None:
    """How the bundle built in ``staging`` differs from the one at ``final`` that it is about to replace; None
    when there is none there, or the same content."""
    if not (final.exists() or final.is_symlink()):
        return None
    new = BundleManifest.load(staging)
    try:
        old = BundleManifest.load(final)
    except FileNotFoundError:
        return ContentChange(None, new.content_digest, f"no {MANIFEST_NAME}")
    except (OSError, BundleIntegrityError) as exc:
        return ContentChange(None, new.content_digest, str(exc))
    if old.content_digest == new.content_digest:
        return None
    detail = files_that_differ(old, new, only_old="removed", only_new="new")
    return ContentChange(old.content_digest, new.content_digest, detail)


def _move_into_place(staging: Path, final: Path, force: bool) -> None:
    """Rename the finished bundle to its hash. With force, the old one is replaced (``placement.replace_dir``:
    in one step where directories can be swapped, so a reader finds the old bundle or the new, never none;
    elsewhere moved aside first, and readers that find nothing in between wait for the build lock, see
    ``_existing``), and deleted once the new one is in place."""
    if final.exists() and not force:
        shutil.rmtree(staging, ignore_errors=True)
        return  # another process finished a bundle of this EXP_HASH first (the build lock should prevent it)
    try:
        replace_dir(staging, final)
    except OSError as exc:
        raise BundleError(f"cannot move the new bundle into place at {final}: {exc.strerror}") from exc
