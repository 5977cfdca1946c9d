"""Side-by-side crops of a real pair: bicubic digital zoom of W against pipelines/hzsr.yaml.

    python tools/real_pair_crops.py PAIR_DIR OUT.png --box X,Y,W,H [--scale S]

Runs hzsr.yaml with default settings on PAIR_DIR's wide.* and tele.* (output at zoom = the
measured ratio, W's pixel size) and draws the region ``--box`` (output pixels) of the
bicubic upsampling of W's same view (the uncrop's own base) next to the pipeline's output,
each enlarged ``--scale`` times with nearest-neighbour so pixels stay visible. The crops in
docs/real_pairs.md were made by:

    python tools/real_pair_crops.py ../shared/data/real/selfdzsr_nikon_x4 \\
        docs/real_pairs_crop_selfdzsr_nikon_x4.png --box 787,464,420,364
    python tools/real_pair_crops.py ../shared/data/real/zoomgs01_phone_uw_w \\
        docs/real_pairs_crop_zoomgs01_phone_uw_w.png --box 125,286,210,215 --scale 2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from nodegraph.execute import run_graph
from nodegraph.graph import load_graph
from nodegraph.nodes.image_io import read_image
from nodegraph.nodes.ops.geometry import central_rect, resample_region
from nodegraph.nodes.ops.metrics import quantize8
from nodegraph.registry import default_registry
from nodegraph.validate import apply_settings

REPO = Path(__file__).resolve().parents[1]
LABEL_PX = 26
GAP_PX = 6


def labelled(panel: np.ndarray, text: str) -> np.ndarray:
    band = np.full((LABEL_PX, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (4, LABEL_PX - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([band, panel])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--box", required=True, help="X,Y,W,H of the crop in output pixels")
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    x, y, w, h = (int(v) for v in args.box.split(","))
    wide_path, tele_path = (next(args.pair.glob(f"{name}.*")) for name in ("wide", "tele"))
    registry = default_registry()
    graph = apply_settings(load_graph(REPO / "pipelines" / "hzsr.yaml"),
                           [f"wide={wide_path}", f"tele={tele_path}",
                            f"out={args.out.with_suffix('.fused.png')}"], registry)
    result = run_graph(graph, registry, keep_all=True)
    fused = quantize8(result.outputs["image"])
    ratio = float(result.values[("align", "ratio")])
    wide, _ = read_image(str(wide_path))
    bicubic = quantize8(resample_region(wide, central_rect(wide.shape[1], wide.shape[0], ratio),
                                        (fused.shape[1], fused.shape[0])))
    panels = []
    for image, text in ((bicubic, "bicubic of W"), (fused, "hzsr.yaml (default settings)")):
        crop = image[y:y + h, x:x + w]
        crop = cv2.resize(crop, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
        panels.append(labelled(crop, text))
    gap = np.full((panels[0].shape[0], GAP_PX, 3), 255, np.uint8)
    cv2.imwrite(str(args.out), np.hstack([panels[0], gap, panels[1]])[..., ::-1])
    args.out.with_suffix(".fused.png").unlink()
    print(f"wrote {args.out} (ratio {ratio:.3f})")


if __name__ == "__main__":
    main()
