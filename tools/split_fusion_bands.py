"""Move the fixed detail-band blurs of a fusion ONNX model out of its graph (issue 14, point 3).

    python tools/split_fusion_bands.py MODEL.onnx OUT.onnx     # needs the onnx package ([test] or [train])

The fusion network (``nodes/train/model.py``, ``DetailBands``) splits Ỹ_ref into three
band-pass layers with fixed Gaussians (sigma 1, 2, 4 px, edge-padded) run as full-resolution
1x25 / 25x1 convolutions: ~35 % of onnxruntime's time per window on a 2-core CPU, because a
25-tap convolution over one channel is a poor fit for its convolution kernels. OpenCV's
separable filter computes the same blurs in a few milliseconds. This tool writes a model whose
graph starts after the bands: a second input ``bands`` (N, 3, H, W) replaces them, and the
Gaussian taps are stored in the model's metadata (``detail_taps``, JSON, the model's own float32
weights), so ``hzsr.fusion_unet`` computes the bands itself with exactly those taps
(``detail_bands``). All learned weights are unchanged: the output equals the original model's
to float rounding (tested). A model with the single input ``x`` still runs as before.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

BANDS_PREFIX = "/bands/"        # torch.onnx.export names the DetailBands module's ops so
BANDS_INPUT = "bands"
TAPS_KEY = "detail_taps"


def split_bands(model_path: Path, out_path: Path) -> None:
    """Write ``out_path``: ``model_path`` with its DetailBands ops replaced by the input ``bands``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inside = [node for node in graph.node if node.name.startswith(BANDS_PREFIX)]
    if not inside:
        raise SystemExit(f"{model_path}: no {BANDS_PREFIX}* ops (already split, or another network)")
    made_inside = {out for node in inside for out in node.output}
    read_outside = {name for node in graph.node if not node.name.startswith(BANDS_PREFIX)
                    for name in node.input}
    (bands_tensor,) = made_inside & read_outside
    horizontal = next(node for node in inside if node.op_type == "Conv"
                      and list(helper.get_attribute_value(a) for a in node.attribute
                               if a.name == "kernel_shape")[0][0] == 1)
    weights = next(node for node in inside if node.output[0] == horizontal.input[1])
    taps = numpy_helper.to_array(helper.get_attribute_value(weights.attribute[0]))  # (k, 1, 1, 25)
    kept = [node for node in graph.node if not node.name.startswith(BANDS_PREFIX)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name == bands_tensor:
                node.input[i] = BANDS_INPUT
    del graph.node[:]
    graph.node.extend(kept)
    x_dims = graph.input[0].type.tensor_type.shape.dim
    dims = [d.dim_param or d.dim_value for d in x_dims]
    dims[1] = taps.shape[0]
    graph.input.append(helper.make_tensor_value_info(BANDS_INPUT, onnx.TensorProto.FLOAT, dims))
    entry = model.metadata_props.add()
    entry.key, entry.value = TAPS_KEY, json.dumps(taps.reshape(taps.shape[0], -1).tolist())
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    split_bands(args.model, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
