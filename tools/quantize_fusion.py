"""Write an int8-quantized copy of a fusion ONNX model, reproducibly, for speed measurements.

    python tools/quantize_fusion.py [--model nodes/hzsr/models/fusion_unet.onnx] --out q.onnx
    nodegraph eval pipelines/hzsr.yaml ../shared/data/cases --set fusion.model=$PWD/q.onnx

Dynamic quantization (onnxruntime.quantization.quantize_dynamic): weights are stored as int8
per output channel, activations are quantized per call from their own range, so no
calibration data is needed and the script runs on whatever fusion model is shipped (same
inputs and outputs). The result is deterministic for a given model file. Whether it may be
shipped is decided by the dev-case quality table (within 0.05 dB of the float model) and by
its measured speed; see the README's "Speed and memory" section for the last measurement.
"""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quantize(model: Path, out: Path) -> None:
    """Dynamic int8 quantization of the Conv/MatMul weights of ``model`` into ``out``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_suffix(".prep.onnx")
    quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_dynamic(str(prepared), str(out), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["Conv", "MatMul"])
    finally:
        prepared.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path,
                        default=REPO / "nodes" / "hzsr" / "models" / "fusion_unet.onnx")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    quantize(args.model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"from {args.model.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
