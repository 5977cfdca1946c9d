"""The two-camera rig of HZSR's training strategy, simulated from real photographs (SPEC section 5).

HZSR trains on (W input, T reference from a second phone, T target) so the network cannot learn
to copy its reference. Without a rig we simulate one from a single real photo per scene:

- target: the sharp photo crop, the scene seen from W's viewpoint at T's detail (the label);
- src (``I_src``): the target through a W camera model -- lens blur (Gaussian, sigma in W
  pixels), box downsampling by the zoom ratio z (2-4.5, as the dev cases' W), signal-dependent
  noise, an ISP-like denoise and unsharp-mask sharpening, JPEG, then bicubic back up to the
  T grid (what ``hzsr.align`` produces);
- ref (``I_ref``): a *different* view: the photo resampled (Lanczos, so that the second camera
  is not blurred by the simulator's own interpolation) through a smooth random depth map
  (depth-dependent parallax along a random baseline plus a small residual global shift),
  occluders cut from other photos (optionally from the scene's own photo, and thin bars)
  pasted in both views with their own, larger parallax,
  view-dependent specular highlights (each view has its own, or the same ones displaced),
  defocus of the depth layers away from the focus depth (T focuses on the depth seen in its
  central 25 %, the default focus ROI of ``hzsr.defocus``), its own noise, exposure, colour,
  gamma and *spatially varying* shading (vignetting and a smooth gain field: two lenses never
  agree on low frequencies, and the global colour match cannot remove that), JPEG; then
  colour-matched to src with ``hzsr.align``'s ``match_colour``.

:func:`align_triplet` then runs the project's own alignment stages on (src, ref) -- the DIS
flow of ``hzsr.flow`` at a work size 1-3x below the scene (as at 12 MP), ``hzsr.warp`` and
``hzsr.occlusion`` with its node defaults (the same M_occ the pipeline feeds the fusion node) --
so the network learns on real warping errors and real M_occ maps. It also computes the blend
weight M_blend the pipeline would give the network's output (``hzsr.blend`` on the pipeline's
M_occ, M_flow, M_reject and, for M_defocus, the layers the simulation really defocused): the
fused image is only ever seen through M_blend, so the training loss weights pixels by it (see
``nodegraph.nodes.train.losses``) instead of asking the network to second-guess what the masks reject.
Everything is drawn from a ``numpy.random.Generator``: fixed seed, fixed data.
"""
from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr.blend import blend, blend_weight
from nodegraph.nodes.hzsr.defocus import focus_roi_on_grid
from nodegraph.nodes.hzsr.flow import estimate_flow
from nodegraph.nodes.hzsr.flow_uncertainty import flow_uncertainty
from nodegraph.nodes.hzsr.occlusion import occlusion
from nodegraph.nodes.hzsr.reject import reject
from nodegraph.nodes.hzsr.warp import warp_bilinear
from nodegraph.nodes.ops.colour import match_colour
from nodegraph.nodes.ops.luminance import luminance

# scikit-image's bundled photographs (motorcycle_* excluded: the dev cases are built from it;
# synthetic images, drawings and binary masks excluded).
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text")
# Debian packages whose wallpapers are real photographs (checked by eye; renders left out).
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey",
                 "OneStandsOut", "Path", "summer_1am")            # plasma-workspace-wallpapers
MATE_NATURE_DIR = "/usr/share/backgrounds/mate/nature"             # mate-backgrounds: all photos
PLASMA_DIR = "/usr/share/wallpapers"
# held out of training, used for the validation loss only
VALIDATION_PHOTOS = ("skimage:coffee", "mate:Wood")


@dataclass(frozen=True)
class RigParams:
    """Ranges the simulation draws from (uniform unless said otherwise)."""
    zoom: tuple[float, float] = (2.0, 4.5)             # W -> T focal ratio
    w_lens_sigma: tuple[float, float] = (0.2, 1.0)     # W lens blur, W px
    w_noise: tuple[float, float] = (0.5 / 255, 4.0 / 255)   # read-noise std
    w_shot: tuple[float, float] = (0.0, 2e-4)          # shot-noise variance per unit signal
    w_denoise_p: float = 0.5                           # probability of the ISP denoise
    w_sharpen: tuple[float, float] = (0.0, 1.0)        # unsharp-mask amount
    w_jpeg_p: float = 0.7
    jpeg_quality: tuple[int, int] = (70, 97)
    # max depth-dependent disparity, T px, log-uniform: mostly small, some close-range scenes
    # (a subject at arm's length gives tens of px at HZSR's 512 px flow resolution)
    parallax: tuple[float, float] = (1.0, 40.0)
    residual_shift: float = 3.0                        # global shift left after FAST align, T px
    occluders: tuple[int, int] = (0, 3)                # per scene, inclusive
    occluder_parallax: tuple[float, float] = (6.0, 30.0)
    # probability that an occluder is cut from the scene's own photo: texture like the surface
    # it hides, so the flow may match one to the other consistently both ways (M_occ misses it)
    occluder_same_photo_p: float = 0.0
    occluder_thin_p: float = 0.0                       # a bar 3-10 % of the scene wide (poles, spokes)
    t_lens_sigma: tuple[float, float] = (0.0, 0.6)     # T's own blur, T px
    defocus_p: float = 0.4
    defocus_sigma: tuple[float, float] = (1.0, 4.0)    # T px, for layers far from focus
    t_noise: tuple[float, float] = (0.3 / 255, 2.0 / 255)
    t_exposure: tuple[float, float] = (0.8, 1.25)
    t_colour: tuple[float, float] = (0.92, 1.08)       # per-channel gain
    t_gamma: tuple[float, float] = (0.9, 1.1)
    t_shading: tuple[float, float] = (0.0, 0.15)       # smooth relative gain field, +-amplitude
    t_vignetting: tuple[float, float] = (0.0, 0.25)    # relative fall-off at the corners
    highlights_p: float = 0.6                          # probability of specular highlights
    highlights: tuple[int, int] = (1, 15)              # per scene, inclusive
    highlight_sigma: tuple[float, float] = (1.0, 5.0)  # T px
    highlight_gain: tuple[float, float] = (0.15, 0.7)
    highlight_shift: tuple[float, float] = (3.0, 25.0)  # view-dependent displacement, T px
    highlight_seen_p: float = 0.8                      # per view; at least one view sees each spot
    flow_downscale: tuple[float, float] = (1.0, 3.0)   # scene size / flow work size
    # T's own ISP sharpening (negative: softening) of its mid band, which neither W nor the
    # target share: two phones' cameras never render the band both resolve alike
    t_sharpen: tuple[float, float] = (0.0, 0.0)        # unsharp-mask amount
    t_sharpen_sigma: tuple[float, float] = (0.7, 2.5)  # its radius, T px
    # the target rendered with W's ISP sharpening (W's amount, at W's radius on the T grid):
    # the fused region then matches the rendering of the W-only frame around it
    target_w_rendering: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, settings: list[str]) -> RigParams:
        """A copy with ``NAME=VALUE`` settings applied (``zoom=1.5,5`` for a range), each
        value typed like the field's default; ValueError names an unknown field or bad value."""
        changes = {}
        for setting in settings:
            name, sep, text = setting.partition("=")
            if not sep or name not in self.__dataclass_fields__:
                raise ValueError(f"rig setting {setting!r}: expected NAME=VALUE with NAME one of "
                                 f"{', '.join(self.__dataclass_fields__)}")
            default = getattr(self, name)
            texts = text.split(",")
            if isinstance(default, tuple) and len(texts) != len(default):
                raise ValueError(f"rig setting {setting!r}: {name} needs {len(default)} "
                                 "comma-separated values")
            try:
                changes[name] = (tuple(type(d)(t) for d, t in zip(default, texts))
                                 if isinstance(default, tuple) else _typed_like(default, text))
            except ValueError as err:
                raise ValueError(f"rig setting {setting!r}: {err}") from None
        return replace(self, **changes)


def _typed_like(default: object, text: str) -> object:
    """``text`` as a value of ``default``'s type; booleans are true/false (or 1/0)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    return type(default)(text)


def photo_paths() -> list[str]:
    """Identifiers of every training/validation photo: ``skimage:NAME`` or a file path."""
    ids = [f"skimage:{n}" for n in SKIMAGE_PHOTOS]
    for name in PLASMA_PHOTOS:
        files = sorted(glob.glob(os.path.join(PLASMA_DIR, name, "contents", "images", "*")),
                       key=os.path.getsize)
        if files:
            ids.append(files[-1])   # the largest rendition
    ids += sorted(glob.glob(os.path.join(MATE_NATURE_DIR, "*.jpg")))
    return ids


def short_id(photo_id: str) -> str:
    if photo_id.startswith("skimage:"):
        return photo_id
    if photo_id.startswith(MATE_NATURE_DIR):
        return "mate:" + os.path.splitext(os.path.basename(photo_id))[0]
    return "plasma:" + photo_id.split(os.sep)[-4]


def load_photo(photo_id: str, max_side: int = 1400) -> np.ndarray:
    """float32 RGB in [0, 1]; large photos are area-downscaled to ``max_side`` (sharper, less noise)."""
    if photo_id.startswith("skimage:"):
        import skimage.data
        img = getattr(skimage.data, photo_id.split(":", 1)[1])()
    else:
        bgr = cv2.imread(photo_id, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(photo_id)
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    scale = max_side / max(img.shape[:2])
    if scale < 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Random smooth field in [0, 1]: a ``cells``-wide random grid, bicubic-upsampled."""
    g = rng.random((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(g, (w + 2 * w // cells, h + 2 * h // cells), interpolation=cv2.INTER_CUBIC)
    big = big[h // cells: h // cells + h, w // cells: w // cells + w]
    lo, hi = big.min(), big.max()
    return (big - lo) / max(hi - lo, 1e-6)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0.05 else img


def unsharp(img: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """img + amount (img - G_sigma(img)), clipped to [0, 1]: an ISP's sharpening."""
    return np.clip(img + amount * (img - _blur(img, sigma)), 0, 1).astype(np.float32)


def simulate_w(target: np.ndarray, rng: np.random.Generator, p: RigParams, zoom: float
               ) -> tuple[np.ndarray, float]:
    """(I_src, W's sharpening amount): ``target`` through the W camera model, resampled back
    to the T grid (bicubic)."""
    h, w = target.shape[:2]
    lo_w, lo_h = max(8, round(w / zoom)), max(8, round(h / zoom))
    img = _blur(target, rng.uniform(*p.w_lens_sigma) * zoom)
    img = cv2.resize(img, (lo_w, lo_h), interpolation=cv2.INTER_AREA)
    var = rng.uniform(*p.w_noise) ** 2 + rng.uniform(*p.w_shot) * np.clip(img, 0, 1)
    img = img + rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(var)
    img = np.clip(img, 0, 1).astype(np.float32)
    if rng.random() < p.w_denoise_p:
        img = cv2.bilateralFilter(img, 5, float(rng.uniform(0.03, 0.1)), float(rng.uniform(1.0, 2.0)))
    amount = rng.uniform(*p.w_sharpen)
    if amount > 0.05:
        img = unsharp(img, amount, 1.0)
    if rng.random() < p.w_jpeg_p:
        img = _jpeg(img, rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    return (np.clip(cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1).astype(np.float32),
            amount if amount > 0.05 else 0.0)


def _blob_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Soft-edged random blob (an object silhouette), float32 in [0, 1]."""
    field = smooth_field(rng, h, w, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2)
    inside = (1.0 - r) + 0.6 * (field - 0.5)
    return np.clip(inside * 8.0, 0, 1).astype(np.float32)


def _gaussian_spots(h: int, w: int, centres: np.ndarray, sigmas: np.ndarray,
                    gains: np.ndarray) -> np.ndarray:
    """Sum of isotropic Gaussian spots, float32 (h, w)."""
    out = np.zeros((h, w), np.float32)
    for (cy, cx), sigma, gain in zip(centres, sigmas, gains):
        r = int(np.ceil(3 * sigma))
        y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] += gain * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    return out


def _add_highlights(target: np.ndarray, ref: np.ndarray, rng: np.random.Generator,
                    p: RigParams, companion: np.ndarray | None = None) -> None:
    """View-dependent specular highlights, in place: each spot is seen displaced in the other
    view, or by one camera only, so a bright blob of Ĩ_ref that Y_src lacks is not detail.
    ``companion`` (a W capture registered to the target) gets the target's spots."""
    h, w = target.shape[:2]
    n = int(rng.integers(p.highlights[0], p.highlights[1] + 1))
    centres = rng.uniform((0, 0), (h, w), (n, 2))
    sigmas = rng.uniform(*p.highlight_sigma, n)
    gains = rng.uniform(*p.highlight_gain, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    shift = rng.uniform(*p.highlight_shift, n)[:, None] * np.stack([np.sin(angle), np.cos(angle)], 1)
    seen = rng.random((n, 2)) < p.highlight_seen_p     # [in target, in ref]
    seen[~seen.any(axis=1), 0] = True
    tint = rng.uniform(0.85, 1.0, 3).astype(np.float32)
    views = [(target, seen[:, 0], centres), (ref, seen[:, 1], centres + shift)]
    if companion is not None:
        views.append((companion, seen[:, 0], centres))
    for img, keep, c in views:
        spots = _gaussian_spots(h, w, c[keep], sigmas[keep], gains[keep])
        np.minimum(img + spots[..., None] * tint, 1.0, out=img)


def _relative_shading(rng: np.random.Generator, p: RigParams, h: int, w: int) -> np.ndarray:
    """T's gain relative to W: vignetting about a random centre times a smooth gain field."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.25 * (h * h + w * w))
    vignetting = 1.0 - rng.uniform(*p.t_vignetting) * np.clip(r2, 0, 1)
    field = 2.0 * smooth_field(rng, h, w, int(rng.integers(2, 5))) - 1.0
    return (vignetting * (1.0 + rng.uniform(*p.t_shading) * field)).astype(np.float32)


def render_view(scene: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """scene(x + D(x)) resampled with Lanczos-4: a second camera sees the scene at its own
    sharpness, which bilinear interpolation at fractional disparities would soften."""
    h, w = scene.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(scene, gx + disparity[..., 0], gy + disparity[..., 1], cv2.INTER_LANCZOS4,
                    borderMode=cv2.BORDER_REFLECT)
    return np.clip(out, 0.0, 1.0)


def simulate_scene(photo: np.ndarray, others: list[np.ndarray], rng: np.random.Generator,
                   p: RigParams, size: tuple[int, int], companion: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(target, ref, defocused, info): the W-viewpoint sharp scene, a second T view of it and
    the fraction (0-1) of each pixel of ref blurred by T's depth of field.

    ref(x) = scene(x + D(x)): the background is read through a smooth depth map d(x) in [0, 1]
    with disparity D = b * d * dir + t; occluders lie in front (depth > 1) with their own
    disparity and hide different background in each view.

    ``companion``: an image registered to ``photo`` (same shape), e.g. a real W capture of the
    same scene; it gets the same scaling, crop and flip and everything pasted into the target
    view (occluders, highlights), and comes back cropped as ``info["companion"]``. It draws
    no random numbers, so the simulation's random stream is the same with or without it.
    """
    h, w = size
    b = float(np.exp(rng.uniform(np.log(p.parallax[0]), np.log(p.parallax[1]))))
    margin = int(np.ceil(b + p.residual_shift + p.occluder_parallax[1])) + 4
    scale = rng.uniform(0.45, 1.0) if max(photo.shape[:2]) > 1000 else rng.uniform(0.8, 1.0)
    scale = max(scale, (h + 2 * margin) / photo.shape[0], (w + 2 * margin) / photo.shape[1])
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=interpolation)
        if companion is not None:
            companion = cv2.resize(companion, None, fx=scale, fy=scale, interpolation=interpolation)
    H, W = h + 2 * margin, w + 2 * margin
    oy = rng.integers(0, photo.shape[0] - H + 1)
    ox = rng.integers(0, photo.shape[1] - W + 1)
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
        companion = None if companion is None else companion[:, ::-1]
    scene = np.ascontiguousarray(photo[oy:oy + H, ox:ox + W])
    seen_by_w = None if companion is None else np.array(companion[oy:oy + H, ox:ox + W])

    depth = 0.7 * smooth_field(rng, H, W, int(rng.integers(2, 6)))
    ramp = np.linspace(0, 1, H, dtype=np.float32)[:, None] * np.ones((1, W), np.float32)
    depth = depth + 0.3 * (ramp if rng.random() < 0.5 else ramp[::-1])  # ground-plane-like tilt
    angle = rng.normal(0.0, 0.2) + (np.pi if rng.random() < 0.5 else 0.0)
    direction = np.array([np.cos(angle), np.sin(angle)], np.float32)
    t = rng.uniform(-p.residual_shift, p.residual_shift, 2).astype(np.float32)
    disparity = (b * depth)[..., None] * direction + t
    target = scene.copy()
    ref = render_view(scene, disparity)
    layer_depth = depth.copy()

    n_occ = int(rng.integers(p.occluders[0], p.occluders[1] + 1)) if others else 0
    for _ in range(n_occ):
        # (each optional draw is skipped when its probability is 0: the default rig's random
        # stream, and so its cache, stay as they were before these options existed)
        same = p.occluder_same_photo_p > 0 and rng.random() < p.occluder_same_photo_p
        src_img = photo if same else others[int(rng.integers(len(others)))]
        oh = int(rng.uniform(0.15, 0.45) * h)
        ow = int(rng.uniform(0.15, 0.45) * w)
        if p.occluder_thin_p > 0 and rng.random() < p.occluder_thin_p:
            if rng.random() < 0.5:
                oh = max(4, int(rng.uniform(0.03, 0.1) * h))
            else:
                ow = max(4, int(rng.uniform(0.03, 0.1) * w))
        if src_img.shape[0] < oh + 1 or src_img.shape[1] < ow + 1:
            continue
        sy, sx = rng.integers(0, src_img.shape[0] - oh), rng.integers(0, src_img.shape[1] - ow)
        patch = src_img[sy:sy + oh, sx:sx + ow]
        alpha = _blob_mask(rng, oh, ow)[..., None]
        d_occ = rng.uniform(*p.occluder_parallax)
        shift = (d_occ * direction + t).round().astype(int)  # the occluder's own disparity
        py = int(rng.integers(margin, margin + h - oh // 2))
        px = int(rng.integers(margin, margin + w - ow // 2))
        views = [(target, (py, px)), (ref, (py - shift[1], px - shift[0]))]
        if seen_by_w is not None:
            views.append((seen_by_w, (py, px)))
        for img, (y0, x0) in views:
            y1, x1 = min(y0 + oh, H), min(x0 + ow, W)
            if y1 <= y0 or x1 <= x0 or y0 < 0 or x0 < 0:
                continue
            a = alpha[: y1 - y0, : x1 - x0]
            img[y0:y1, x0:x1] = a * patch[: y1 - y0, : x1 - x0] + (1 - a) * img[y0:y1, x0:x1]
            if img is ref:
                layer_depth[y0:y1, x0:x1] = np.maximum(layer_depth[y0:y1, x0:x1], 1.2 * a[..., 0])

    if rng.random() < p.highlights_p:
        _add_highlights(target, ref, rng, p, seen_by_w)

    # T's narrow depth of field: layers away from the focus depth are blurred in ref only.
    ref = _blur(ref, rng.uniform(*p.t_lens_sigma))
    if p.t_sharpen != (0.0, 0.0):
        ref = unsharp(ref, rng.uniform(*p.t_sharpen), rng.uniform(*p.t_sharpen_sigma))
    far = np.zeros((H, W), np.float32)
    if rng.random() < p.defocus_p:
        x0, y0, x1, y1 = focus_roi_on_grid((h, w), None, None)
        focus = float(np.median(layer_depth[margin + y0:margin + y1, margin + x0:margin + x1]))
        far = np.clip(np.abs(layer_depth - focus) * 3.0 - 0.3, 0, 1).astype(np.float32)
        ref = (1 - far[..., None]) * ref + far[..., None] * _blur(ref, rng.uniform(*p.defocus_sigma))
    ref = ref * _relative_shading(rng, p, H, W)[..., None]
    ref = np.clip(ref * rng.uniform(*p.t_exposure) * rng.uniform(*p.t_colour, 3), 0, 1)
    ref = ref ** rng.uniform(*p.t_gamma)
    ref = ref + rng.standard_normal(ref.shape).astype(np.float32) * rng.uniform(*p.t_noise)
    ref = _jpeg(np.clip(ref, 0, 1), rng.integers(85, 99))

    crop = (slice(margin, margin + h), slice(margin, margin + w))
    info = {"parallax": float(b), "occluders": n_occ, "scale": float(scale)}
    if seen_by_w is not None:
        info["companion"] = np.ascontiguousarray(seen_by_w[crop]).astype(np.float32)
    return (np.ascontiguousarray(target[crop]).astype(np.float32),
            np.ascontiguousarray(ref[crop]).astype(np.float32), np.ascontiguousarray(far[crop]), info)


def align_triplet(src: np.ndarray, ref: np.ndarray, zoom: float, flow_downscale: float,
                  defocused: np.ndarray | None = None) -> dict:
    """The project's alignment on a simulated pair: colour match, F_fwd/F_bwd, Ĩ_ref, M_occ,
    and the M_blend the pipeline would apply (``defocused`` stands in for M_defocus)."""
    h, w = src.shape[:2]
    low = (max(8, round(w / zoom)), max(8, round(h / zoom)))
    # colour statistics at W's optical resolution, as hzsr.align computes them
    ref = match_colour(ref, cv2.resize(ref, low, interpolation=cv2.INTER_AREA),
                       cv2.resize(src, low, interpolation=cv2.INTER_AREA))
    work = (max(32, round(h / flow_downscale)), max(32, round(w / flow_downscale)))
    fwd, bwd, _ = estimate_flow(src, ref, "dis", work)
    ref_warped = warp_bilinear(ref, fwd)
    m_occ = occlusion(fwd, bwd)
    m_flow = flow_uncertainty(fwd, bwd, src, ref_warped)
    m_reject = reject(src, ref_warped, (0.0, 0.0, w / zoom, h / zoom))
    masks = [m for m in (m_occ, defocused, m_flow, m_reject) if m is not None]
    defaults = spec_of(blend).default_params()
    m_blend = blend_weight((h, w), masks, None, defaults["grow"], defaults["smooth_sigma"],
                           defaults["feather"])
    return {"ref": ref, "ref_warped": ref_warped, "M_occ": m_occ, "M_blend": m_blend}


def resample_w_capture(w_capture: np.ndarray, zoom: float) -> np.ndarray:
    """I_src from a real W capture registered to the target on the target's grid: box
    (INTER_AREA) downsampling by ``zoom`` (W's sensor sampling at that focal ratio) and bicubic
    back up, as ``hzsr.align`` resamples W; the blur, noise and ISP are the capture's own."""
    h, w = w_capture.shape[:2]
    low = cv2.resize(w_capture, (max(8, round(w / zoom)), max(8, round(h / zoom))),
                     interpolation=cv2.INTER_AREA)
    return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1).astype(np.float32)


def make_sample(photo: np.ndarray, others: list[np.ndarray], rng: np.random.Generator,
                p: RigParams, size: tuple[int, int], w_capture: np.ndarray | None = None,
                w_density: float | None = None) -> dict:
    """One simulated capture: planes Y_src, Ỹ_ref, M_occ, Y_target, M_blend (float32 (H, W))
    + info.

    Without ``w_capture`` I_src is ``photo`` through the simulated W camera. With it (a real
    W capture registered to ``photo``, the real T-side detail) I_src comes from that capture:
    ``w_density`` None: box-downsampled by a zoom drawn from the rig and bicubic back up
    (:func:`resample_w_capture`; a W capture stored on T's grid, as City100's), else
    ``w_density`` is T's pixel density over W's in the capture, which is used as it is (a
    user's W already resampled onto T's grid). The reference is always the rig's second view
    of ``photo``, so the network cannot copy its target.
    """
    target, ref, defocused, info = simulate_scene(photo, others, rng, p, size, w_capture)
    zoom = rng.uniform(*p.zoom)
    if w_capture is None:
        src, w_sharpen = simulate_w(target, rng, p, zoom)
        if p.target_w_rendering and w_sharpen > 0:
            target = unsharp(target, w_sharpen, zoom)
    elif w_density is None:
        src = resample_w_capture(info.pop("companion"), zoom)
    else:
        # the scene's scaling changed both images' pixel size alike
        src, zoom = info.pop("companion"), max(1.0, w_density * info["scale"])
    aligned = align_triplet(src, ref, zoom, rng.uniform(*p.flow_downscale), defocused)
    info["zoom"] = float(zoom)
    return {"Y_src": luminance(src), "Y_ref": luminance(aligned["ref_warped"]),
            "M_occ": aligned["M_occ"], "Y_target": luminance(target), "M_blend": aligned["M_blend"],
            "info": info,
            "src": src, "ref": aligned["ref"], "ref_warped": aligned["ref_warped"], "target": target}


def make_wide_truth_sample(w_capture: np.ndarray, t_capture: np.ndarray, rng: np.random.Generator,
                           p: RigParams, w_upsampled: float, pseudo_gt: float = 2.0) -> dict:
    """A sample whose label is W's own capture (DCSR's self-supervised real-image adaptation):
    planes and info as :func:`make_sample`.

    ``w_capture`` and ``t_capture``: one scene from both cameras, registered on one grid, on
    which W is stored ``w_upsampled`` times denser than its native sampling (City100's L:
    2). W's native capture is the target; W's input is that capture box-downsampled by
    ``pseudo_gt`` (the pseudo-GT protocol's K, as ``nodegraph eval --pseudo-gt``), and T is
    the other camera's real capture, both on a working grid where T's density over W's input
    is drawn from [1.2, ``pseudo_gt``] (above it the target would have to be upsampled).
    Unlike the rig, the reference is never rendered from the target: it carries T's real
    optics, ISP and registration residue, and W's well-resolved band in the label is W's own.
    """
    density = rng.uniform(1.2, pseudo_gt)
    h, w = w_capture.shape[:2]
    scale = density / (w_upsampled * pseudo_gt)   # working grid px per stored px
    size = (round(w * scale), round(h * scale))
    if rng.random() < 0.5:
        w_capture, t_capture = w_capture[:, ::-1], t_capture[:, ::-1]
    target = cv2.resize(w_capture, size, interpolation=cv2.INTER_AREA)
    ref = cv2.resize(t_capture, size, interpolation=cv2.INTER_AREA)
    low = cv2.resize(w_capture, (round(size[0] / density), round(size[1] / density)),
                     interpolation=cv2.INTER_AREA)
    src = np.clip(cv2.resize(low, size, interpolation=cv2.INTER_CUBIC), 0, 1).astype(np.float32)
    aligned = align_triplet(src, ref, density, rng.uniform(*p.flow_downscale))
    return {"Y_src": luminance(src), "Y_ref": luminance(aligned["ref_warped"]),
            "M_occ": aligned["M_occ"], "Y_target": luminance(target), "M_blend": aligned["M_blend"],
            "info": {"zoom": float(density), "wide_truth": True}}

