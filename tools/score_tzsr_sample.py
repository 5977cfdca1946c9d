"""Score pipelines/tzsr.yaml on the bundled three-camera sample against its ground truth.

    python tools/score_tzsr_sample.py

Y-PSNR and SSIM (SPEC section 3: 8-bit Y, 8-pixel border left out) of three results at the
sample's zoom (1.5 relative to UW, UW's pixel size, UW's frame):

* bicubic UW: UW's central 1/zoom, bicubic-upsampled;
* two cameras (W+T only): pipelines/hzsr.yaml on W and T at zoom 1 (W's whole field), placed
  where W's field lies in the output by the nominal geometry (centred, zoom ratio from the
  focal lengths); outside W's field W+T has no pixels, so there the bicubic UW fills in (the
  best a system without UW-W fusion can show);
* three cameras: pipelines/tzsr.yaml with no settings.

Each is scored over the whole frame and over W's footprint (where W+T has pixels of its own).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from nodegraph.execute import run_graph
from nodegraph.graph import load_graph
from nodegraph.nodes.image_io import read_image
from nodegraph.nodes.ops.geometry import central_rect, rect_to_grid_matrix
from nodegraph.nodes.ops.metrics import bicubic_crop, inner, luma8, psnr, quantize8, ssim
from nodegraph.registry import default_registry
from nodegraph.validate import apply_settings

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "nodes" / "hzsr" / "sample_tzsr"
ZOOM = 1.5              # tzsr.yaml's default, the zoom gt.png is made at
RATIO_UW_W = 26 / 13    # the sample's EXIF 35 mm focal lengths


def run(pipeline: str, settings: list[str]) -> np.ndarray:
    """The ``image`` output of a pipeline run (its written file goes to a temporary folder)."""
    registry = default_registry()
    with tempfile.TemporaryDirectory() as folder:
        settings = [*settings, f"out={Path(folder) / 'out.png'}"]
        graph = apply_settings(load_graph(REPO / "pipelines" / pipeline), settings, registry)
        return run_graph(graph, registry).outputs["image"]


def results() -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(gt, {name: 8-bit RGB result}, W's footprint mask in the output frame)."""
    gt = quantize8(read_image(SAMPLE / "gt.png")[0])
    uw = quantize8(read_image(SAMPLE / "ultrawide.jpg")[0])
    h, w = gt.shape[:2]
    bicubic = bicubic_crop(uw, central_rect(uw.shape[1], uw.shape[0], ZOOM), (w, h))
    wide_tele = quantize8(run("hzsr.yaml", [f"wide={SAMPLE / 'wide.jpg'}", f"tele={SAMPLE / 'tele.jpg'}",
                                            "zoom=1"]))
    # W's field in output pixels: the central 1/(RATIO_UW_W / ZOOM) of the output frame.
    footprint_rect = central_rect(w, h, RATIO_UW_W / ZOOM)
    # maps W+T pixels to output pixels (pixel centres aligned)
    to_output = rect_to_grid_matrix(footprint_rect, (wide_tele.shape[1], wide_tele.shape[0]))
    placed = cv2.warpAffine(wide_tele, to_output, (w, h), flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_CONSTANT)
    footprint = cv2.warpAffine(np.ones(wide_tele.shape[:2], np.float32), to_output, (w, h),
                               flags=cv2.INTER_LINEAR) > 0.999
    two_cameras = np.where(footprint[:, :, None], placed, bicubic)
    three_cameras = quantize8(run("tzsr.yaml", []))
    return gt, {"bicubic UW": bicubic, "two cameras (W+T)": two_cameras,
                "three cameras (tzsr.yaml)": three_cameras}, footprint


def score() -> dict[str, dict[str, float]]:
    gt, outputs, footprint = results()
    y_gt = luma8(gt)
    whole = inner(y_gt.shape)
    table = {}
    for name, image in outputs.items():
        y = luma8(image)
        table[name] = {"psnr_all": psnr(y, y_gt, whole), "psnr_w_footprint": psnr(y, y_gt, whole & footprint),
                       "ssim_all": ssim(y, y_gt, whole)}
    return table


def main() -> int:
    print("| result | Y-PSNR all | Y-PSNR on W's footprint | SSIM all |\n|---|---|---|---|")
    for name, row in score().items():
        print(f"| {name} | {row['psnr_all']:.2f} | {row['psnr_w_footprint']:.2f} | {row['ssim_all']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
