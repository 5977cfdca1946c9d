"""Write an int8-quantized copy of a fusion ONNX model, reproducibly, for speed measurements.

    python tools/quantize_fusion.py [--model nodes/hzsr/models/fusion_unet.onnx] --out q.onnx
        [--static ../shared/data/train/city100_iphonex]
    nodegraph eval pipelines/hzsr.yaml ../shared/data/cases --set fusion.model=$PWD/q.onnx

Without ``--static``: dynamic quantization (onnxruntime's quantize_dynamic): weights int8 per
output channel, activations quantized per call from their own range, no calibration data.
With ``--static FOLDER``: static QDQ quantization (QLinearConv kernels), activations'
ranges calibrated on fusion inputs made from the training pairs in FOLDER (``NNNL.png``,
``NNNH.png``; City100, training data only): Y_src = luminance of L, Ỹ_ref = luminance of H,
M_occ = 0, on 256 px crops. Either runs on whatever fusion model is shipped (same inputs
and outputs) and is deterministic for a given model file and folder. Whether it may be
shipped is decided by the dev-case quality table (within 0.05 dB of the float model) and by
its measured speed; see the README's "Speed and memory" section for the last measurement.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


CROP = 256  # calibration crop side: a multiple of the network's 64 px grid


def calibration_inputs(folder: Path, limit: int = 16) -> list[np.ndarray]:
    """(1, 3, CROP, CROP) fusion inputs from the first ``limit`` L/H training pairs in ``folder``."""
    import cv2

    from nodegraph.nodes.ops.luminance import luminance

    batches = []
    for low_path in sorted(folder.glob("*L.png"))[:limit]:
        low, high = (cv2.imread(str(path))[:, :, ::-1].astype(np.float32) / 255.0
                     for path in (low_path, low_path.with_name(low_path.name[:-5] + "H.png")))
        h, w = (min(a, b) for a, b in zip(low.shape[:2], high.shape[:2]))
        y0, x0 = (h - CROP) // 2, (w - CROP) // 2
        window = (slice(y0, y0 + CROP), slice(x0, x0 + CROP))
        planes = [luminance(low[window]), luminance(high[window]), np.zeros((CROP, CROP), np.float32)]
        batches.append(np.stack(planes)[None])
    if not batches:
        raise SystemExit(f"no NNNL.png/NNNH.png training pairs in {folder}")
    return batches


def quantize(model: Path, out: Path, static_folder: Path | None = None) -> None:
    """int8 quantization of ``model`` into ``out``: dynamic, or static calibrated on ``static_folder``."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_suffix(".prep.onnx")
    quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    try:
        if static_folder is None:
            quantize_dynamic(str(prepared), str(out), per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["Conv", "MatMul"])
            return
        from nodegraph.nodes.hzsr.fusion_unet import network_feed

        feed = network_feed(ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]))

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._batches = iter(calibration_inputs(static_folder))

            def get_next(self):
                batch = next(self._batches, None)
                return None if batch is None else feed(batch)

        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    finally:
        prepared.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path,
                        default=REPO / "nodes" / "hzsr" / "models" / "fusion_unet.onnx")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--static", type=Path, metavar="FOLDER",
                        help="static quantization calibrated on the L/H training pairs in FOLDER")
    args = parser.parse_args()
    quantize(args.model, args.out, args.static)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"from {args.model.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
