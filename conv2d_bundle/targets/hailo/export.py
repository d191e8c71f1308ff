"""Hailo: the compile kit in every bundle, and a HEF where the Dataflow Compiler is installed.

``build_hailo_kit`` writes ``models/hailo/`` (see :mod:`conv2d_bundle.targets.hailo.kit`), proves that the
device part + host post-processing reproduce the golden outputs, measures int8 sensitivity, and, where
``hailo_sdk_client`` imports and the user asked for hailo, compiles ``models/hailo.hef``
(:mod:`conv2d_bundle.targets.hailo.dfc`). A compiler failure leaves ``status: "kit"`` with the
compiler's own message; the bundle still seals with the kit.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

from conv2d_bundle.bundle import atomic
from conv2d_bundle.errors import BundleError, ExportError, HefError
from conv2d_bundle.parity.figures import check_outputs
from conv2d_bundle.targets.hailo import DEVICE_ONNX, HEF_FILE, KIT_DIR, NOT_COMPILED, int8
from conv2d_bundle.targets.hailo import dfc as hailo_compile
from conv2d_bundle.targets.hailo import kit as hailo_kit

log = logging.getLogger(__name__)


def build_hailo_kit(ctx: Any) -> dict[str, Any]:
    """Write the kit into ``ctx.staging``; compile a HEF where possible. Returns metadata ``formats.hailo``."""
    cfg, spec = ctx.config, ctx.config.model
    options = cfg.hailo_options
    kit = ctx.staging / KIT_DIR
    kit.mkdir(parents=True, exist_ok=True)
    hw_arch = str(options.get("hw_arch", "hailo8"))
    net_name = hailo_kit.net_name_for(spec.name)
    opset = cfg.onnx_opset if cfg.onnx_opset in (11, 13) else 13
    device = hailo_kit.export_device_onnx(
        ctx.model, spec, kit / "model.onnx", opset=opset, metadata=ctx.onnx_metadata()
    )
    got = hailo_kit.split_runner(device.path, spec, device.split)(ctx.reference.inputs)
    # a ParityError (an ExportError): a kit that could never give the model's outputs is not deployable
    parity = check_outputs(got, ctx.reference.outputs, spec.outputs, f"{DEVICE_ONNX} + host post-processing")
    calib, calib_info = hailo_kit.calibration_set(
        options,
        ctx.reference.inputs,
        spec.input_shape,
        int(cfg.reference_options["seed"]),
        base_dir=cfg.base_dir,
        real=getattr(ctx.reference, "source", None),  # export.reference.inputs: the default calibration data
    )
    buf = io.BytesIO()
    np.save(buf, calib, allow_pickle=False)
    atomic.write_bytes(kit / "calib_set.npy", buf.getvalue())
    meta: dict[str, Any] = {
        "status": "kit",
        "reason": NOT_COMPILED,
        "kit_dir": KIT_DIR,
        "kit_files": [f"{KIT_DIR}/{name}" for name in hailo_kit.KIT_FILES],
        "hw_arch": hw_arch,
        "net_name": net_name,
        "split": device.split,
        "device_input_name": spec.input_name,
        "device_input_shape": [1, *list(spec.input_shape)[1:]],
        "device_outputs": list(device.output_names),
        "end_node_names": list(device.end_node_names),
        "device_opset": device.opset,
        "device_ir_version": device.ir_version,
        "simplification": dict(device.simplification),  # library + version, op counts before/after
        "calibration": calib_info,
        "split_parity": parity,
        "exp_hash": ctx.exp_hash,
    }
    meta["int8"] = _int8(device, calib, ctx.reference.inputs, spec)
    for message in int8.below_thresholds(meta["int8"], int8.thresholds(options)):
        log.warning("%s", message)
    hailo_kit.write_text_files(
        kit,
        {
            "model_script.alls": hailo_kit.model_script(net_name, calib.shape[0], device.split),
            "compile.sh": hailo_kit.compile_script(
                net_name, hw_arch, spec.input_name, device.end_node_names, ctx.exp_hash, device.output_names
            ),
            "README.md": hailo_kit.kit_readme(meta, spec),
        },
    )
    if not hailo_compile.dfc_available():
        meta["reason"] = f"{NOT_COMPILED} (hailo_sdk_client is not importable here)"
    elif not ctx.explicit_formats:
        meta["reason"] = f"{NOT_COMPILED} (the DFC is installed: ask for it with --formats ...,hailo)"
    else:
        _compile(ctx, meta, spec)
    return meta


def _int8(device: hailo_kit.DeviceExport, calib: np.ndarray, inputs: np.ndarray, spec: Any) -> dict[str, Any]:
    codes = next((o.name for o in spec.outputs if o.kind == "codes"), None)
    classes = spec.class_output.name if spec.class_output else None
    try:
        return int8.int8_agreement(
            device.path,
            calib,
            inputs,
            spec.input_name,
            lambda out: hailo_kit.host_outputs(out, spec, device.split),
            codes,
            classes,
        )
    except ExportError as exc:
        log.warning("int8 sensitivity not measured: %s", exc)
        return {"error": str(exc)}


def _compile(ctx: Any, meta: dict[str, Any], spec: Any) -> None:
    from conv2d_bundle.targets.hailo.hef import device_accepts, read_hef

    kit = ctx.staging / KIT_DIR
    hef_path = ctx.staging / HEF_FILE
    request = hailo_compile.CompileRequest(
        onnx=kit / "model.onnx",
        calib=kit / "calib_set.npy",
        script=kit / "model_script.alls",
        hef=hef_path,
        net_name=meta["net_name"],
        hw_arch=meta["hw_arch"],
        input_name=spec.input_name,
        input_shape=tuple(meta["device_input_shape"]),
        end_nodes=tuple(meta["end_node_names"]),
    )
    timeout = float(ctx.config.hailo_options.get("compile_timeout", hailo_compile.DEFAULT_TIMEOUT))
    try:
        dfc_version = hailo_compile.run_dfc(request, timeout=timeout)
        info = read_hef(hef_path)
        ok, note = device_accepts(meta["hw_arch"], info.hw_arch)
        if not ok:
            raise HefError(f"the DFC wrote a HEF for {info.hw_arch}: {note}")
        if meta["net_name"] not in info.network_groups:
            raise HefError(
                f"the DFC wrote network groups {list(info.network_groups)}, not {meta['net_name']}"
            )
    except BundleError as exc:
        hef_path.unlink(missing_ok=True)
        meta["reason"] = f"{NOT_COMPILED} (the DFC failed here: {exc})"
        log.warning("hailo: compile failed, the bundle keeps the kit: %s", exc)
        return
    meta.pop("reason", None)
    meta.update(
        status="built",
        file=HEF_FILE,
        source="compiled",
        dfc_version=dfc_version,
        hef_hw_arch=info.hw_arch,
        sdk_version=info.sdk_version,
        hef_header_version=info.header_version,
        size_bytes=info.file_size,
        file_size_mb=round(info.file_size / 2**20, 3),
    )
