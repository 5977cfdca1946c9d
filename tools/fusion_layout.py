"""Rewrite a fusion ONNX model into the layout hzsr.fusion_unet runs fastest (issue 14).

    python tools/fusion_layout.py MODEL.onnx OUT.onnx     # needs the train extra

``nodegraph train fusion`` writes this layout itself; this converts a file exported before
(the bundled model, or a model from an older run). Both steps keep every learned weight and
the output up to float rounding (tested); the tool applies whichever the file still lacks
(``runtime_layout`` in ``nodes/train/export.py``) and refuses a file that has both:

- ``split_bands``: the fixed detail-band blurs (sigma 1, 2, 4 px, run as full-resolution 1x25 /
  25x1 convolutions: ~35 % of onnxruntime's time per window on a 2-core CPU) leave the graph;
  a second input ``bands`` (N, 3, H, W) replaces them, their taps go to the model's metadata
  (``detail_taps``), and the node computes them with OpenCV's separable filter.
- ``space_to_depth_layout``: torch's pixel_unshuffle (Reshape + a 6-D Transpose: ~19 % of the
  time per window) becomes ONNX SpaceToDepth, the convolutions reading it take their input
  channels in its order, and the detail gains are applied at the network's 1/4 resolution
  before the residual's one DepthToSpace (instead of a 48-channel DepthToSpace and a
  full-resolution product and sum).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nodegraph.nodes.train.export import runtime_layout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    try:
        runtime_layout(args.model, args.out)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
