"""Move the fixed detail-band blurs of a fusion ONNX model out of its graph (issue 14, point 3).

    python tools/split_fusion_bands.py MODEL.onnx OUT.onnx     # needs the train extra

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
from pathlib import Path

from nodegraph.nodes.train.export import split_bands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    split_bands(args.model, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
