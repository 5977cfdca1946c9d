"""Keep W's own band in the fused luminance: T contributes only what W cannot resolve.

An option around the fusion, not a stage of ``hzsr.yaml`` (its ablation is
``pipelines/ablations/keep_wide_band.yaml``). The fusion's residual R = Y_fusion - Y_src holds
T's detail above W's resolution and, below it, T's version of the structure W already
resolves. Between two real cameras that version differs from W's (parallax the flow left,
another ISP's rendering): measured on a real ultra-wide + wide phone pair, the learned fusion
*moves* W's well-resolved structure onto T's (docs/real_pairs.md). This node keeps R only
above a Gaussian G of ``band_sigma`` W pixels:

    Y_out = Y_src + R - G(R),   G's sigma = band_sigma * d working px,

d = T px per W px on the working grid (T's pixel density over W's: the working grid's width
over the footprint's width in W). The output keeps W's rendering and geometry in W's band, so
it matches the W-only region around T's footprint; the price is the coarse part of T's gain
where W's band is blurred or misregistered (the semi-synthetic City100 dev cases: -1.5 dB).
Chroma is the fusion's (I_src's). ``band_sigma`` = 0 passes the fused image through.
"""
from __future__ import annotations

import numpy as np

from nodegraph import Image, Out, Param, Rect, node
from nodegraph.errors import InputError
from nodegraph.nodes.ops.filters import lowpass
from nodegraph.nodes.ops.luminance import luminance, replace_luminance


def density_on_grid(grid_width: int, crop: tuple[float, float, float, float]) -> float:
    """d: working-grid px per W px, from the grid's width and T's footprint in W (x0, y0, x1, y1)."""
    footprint_width = float(crop[2]) - float(crop[0])
    if not footprint_width > 0:
        raise InputError(f"crop {tuple(crop)} has no width: it is not a footprint in W")
    return grid_width / footprint_width


def keep_wide_band_luminance(y_src: np.ndarray, y_fusion: np.ndarray, sigma: float) -> np.ndarray:
    """Y_src + R - G_sigma(R), R = Y_fusion - Y_src, float32 (H, W); sigma in working px."""
    residual = (y_fusion - y_src).astype(np.float32)
    return (y_src + residual - lowpass(residual, sigma)).astype(np.float32)


@node("hzsr.keep_wide_band", version=1)
def keep_wide_band(src: Image, fused: Image, crop: Rect, *,
                   band_sigma: float = Param(0.6, range=(0.0, 10.0), unit="W px",
                                             doc="Gaussian sigma, in W pixels, of the band kept "
                                                 "from W (0 = the fused image as it is; 0.6: "
                                                 "half amplitude at 0.62 of W's Nyquist)"),
                   ) -> Out(fused=Image):
    """Fused image whose luminance keeps W's band: Y_src + R - G(R), R = Y_fusion - Y_src.

    ``src`` I_src and ``fused`` I_fusion, (h, w, 3) on the working grid; ``crop`` T's footprint
    in W (hzsr.align), which gives d = w / crop width. G is a Gaussian of band_sigma * d
    working px. Chroma from ``fused``.
    """
    if band_sigma <= 0:
        return fused
    sigma = band_sigma * density_on_grid(src.shape[1], crop)
    y_out = keep_wide_band_luminance(luminance(src), luminance(fused), sigma)
    return replace_luminance(fused, y_out)
