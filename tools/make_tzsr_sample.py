"""Build the bundled three-camera sample nodes/hzsr/sample_tzsr/ (UW, W, T and ground truth).

Source photograph: ``Wood`` (2560x1920, weathered wood grain in shallow focus, 2008, by
Jean-François Fortin Tam) from the Debian package ``mate-backgrounds`` 1.26.0-1
(``/usr/share/backgrounds/mate/nature/Wood.jpg``, GPL-2+ per the package's copyright file).
No shipped model was trained on it: it is one of the fusion model's two held-out validation
photos (nodes/train/simulate.py, VALIDATION_PHOTOS; its simulated validation scenes helped
choose between training runs, see models/MODEL_CARD.md), and the learned upsampler saw only
City100 pairs, so the sample measures the pipeline on a photo no model learnt from. (It replaced
``OneStandsOut`` of plasma-workspace-wallpapers, a fusion training photo.) The centre of the
photo has grain texture sharp enough for both alignment stages at this size: W->T registers by
template matching refined by correlation, UW->W by the central crop + FAST translation path.

The scene S is the photo's centred 16:10 part area-downscaled to 1600x1000 (sharper, less noise). Each camera sees
a centred field of view of S through its own small homography (a viewpoint change of a few
pixels, as between a phone's lenses; the UW's is the identity, so the ground truth is in UW's
frame) at 400x250 pixels, with its own optics and sensor:

=====  ============  ==========  ===========  =====================  ==================
view   field of S    blur (px)   noise (8b)   corner jitter (S px)   35 mm focal (EXIF)
=====  ============  ==========  ===========  =====================  ==================
UW     whole         0.9         3.0          0                      13 mm
W      central 1/2   1.3         2.0          8                      26 mm
T      central 1/4   0.5         1.5          6                      52 mm
=====  ============  ==========  ===========  =====================  ==================

Blur is a Gaussian of that sigma in the camera's own pixels (plus the anti-alias filter of
the downscale), noise Gaussian in 8-bit levels, then JPEG quality 92. The ground truth
``gt.png`` is the output of ``pipelines/tzsr.yaml``'s default zoom (1.5 relative to UW, at
UW's pixel size): S's central 2/3, anti-aliased, no blur, no noise, in UW's frame.

Run from the repository root (needs the mate-backgrounds package): python tools/make_tzsr_sample.py
"""
from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

PHOTO = "/usr/share/backgrounds/mate/nature/Wood.jpg"
OUT_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "nodes", "hzsr", "sample_tzsr")
SCENE_WH = (1600, 1000)
VIEW_WH = (400, 250)
GT_ZOOM = 1.5  # relative to UW; tzsr.yaml's default zoom
JPEG_QUALITY = 92
SEED = 316
# name: (field of view as a fraction of S, blur sigma in view px, noise sigma in 8-bit levels,
#        corner jitter in S px, 35 mm focal length)
CAMERAS = {"ultrawide": (1.0, 0.9, 3.0, 0.0, 13),
           "wide": (0.5, 1.3, 2.0, 8.0, 26),
           "tele": (0.25, 0.5, 1.5, 6.0, 52)}


def view_matrix(fraction: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """3x3 map from view pixels to scene pixels: the centred field ``fraction`` of S, through a
    homography whose corners move by up to ``jitter`` scene px (the camera's viewpoint)."""
    sw, sh = SCENE_WH
    vw, vh = VIEW_WH
    fw, fh = sw * fraction, sh * fraction
    x0, y0 = (sw - fw) / 2, (sh - fh) / 2
    corners_view = np.float32([[0, 0], [vw, 0], [vw, vh], [0, vh]])
    corners_scene = np.float32([[x0, y0], [x0 + fw, y0], [x0 + fw, y0 + fh], [x0, y0 + fh]])
    corners_scene += rng.uniform(-jitter, jitter, corners_scene.shape).astype(np.float32)
    return cv2.getPerspectiveTransform(corners_view, corners_scene)


def render(scene: np.ndarray, to_scene: np.ndarray, blur_px: float) -> np.ndarray:
    """The view: S low-passed (anti-alias for the downscale + the lens blur, both in scene px),
    then sampled at each view pixel's scene position (bicubic)."""
    scale = np.sqrt(abs(np.linalg.det(to_scene[:2, :2])))  # scene px per view px
    sigma = np.hypot(0.5 * scale, blur_px * scale)
    soft = cv2.GaussianBlur(scene, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return cv2.warpPerspective(soft, to_scene, VIEW_WH, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT_101)


def make_views() -> dict[str, np.ndarray]:
    """uint8 RGB views (ultrawide, wide, tele) and the ground truth ``gt``."""
    rng = np.random.default_rng(SEED)
    photo = cv2.cvtColor(cv2.imread(PHOTO, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = photo.shape[:2]
    crop_w = min(w, round(h * SCENE_WH[0] / SCENE_WH[1]))  # centred, to S's aspect ratio
    crop_h = round(crop_w * SCENE_WH[1] / SCENE_WH[0])
    photo = photo[(h - crop_h) // 2:(h + crop_h) // 2, (w - crop_w) // 2:(w + crop_w) // 2]
    scene = cv2.resize(photo.astype(np.float32), SCENE_WH, interpolation=cv2.INTER_AREA)
    views = {}
    for name, (fraction, blur_px, noise, jitter, _focal) in CAMERAS.items():
        view = render(scene, view_matrix(fraction, jitter, rng), blur_px)
        view += rng.normal(0.0, noise, view.shape)
        views[name] = np.clip(np.rint(view), 0, 255).astype(np.uint8)
    gt = render(scene, view_matrix(1.0 / GT_ZOOM, 0.0, rng), 0.0)
    views["gt"] = np.clip(np.rint(gt), 0, 255).astype(np.uint8)
    return views


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, pixels in make_views().items():
        if name == "gt":
            path = os.path.normpath(os.path.join(OUT_DIR, "gt.png"))
            Image.fromarray(pixels).save(path, optimize=True)
        else:
            path = os.path.normpath(os.path.join(OUT_DIR, f"{name}.jpg"))
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0xA405] = CAMERAS[name][4]  # Exif sub-IFD: FocalLengthIn35mmFilm
            Image.fromarray(pixels).save(path, quality=JPEG_QUALITY, exif=exif)
        print(f"{path}: {pixels.shape[1]}x{pixels.shape[0]}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
