"""Pre-generated training patches: simulate scenes once, cut fixed patches, cache them as .npz.

The cache (outside git) holds ``x`` (N, 3, P, P) = [Y_src, Ỹ_ref, M_occ] (the network's
inputs) and ``y`` (N, 2, P, P) = [Y_target, M_blend] (the label and the blend weight the
pipeline would give the output, which weights the loss) in float16, plus the list of photos
and the simulation parameters used. Training
then only reads arrays (flips and 90-degree rotations are applied on the fly).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nodegraph.errors import InputError

from .simulate import (
    VALIDATION_PHOTOS,
    RigParams,
    load_photo,
    make_sample,
    make_wide_truth_sample,
    photo_paths,
    short_id,
)

SCENE_SIZES = ((384, 512), (448, 448), (320, 576), (512, 384))


def _scene_size(rng: np.random.Generator, image_shape: tuple[int, ...], patch: int) -> tuple[int, int]:
    """A scene size from SCENE_SIZES, shrunk (to the 64 px grid) to fit the image with margins."""
    size = SCENE_SIZES[int(rng.integers(len(SCENE_SIZES)))]
    return tuple(min(s, max(patch, (d - 110) // 64 * 64)) for s, d in zip(size, image_shape[:2]))


def _cut_patches(planes: np.ndarray, rng: np.random.Generator, patch: int, count: int,
                 xs: list, ys: list) -> None:
    """``count`` random patch x patch crops of planes [Y_src, Ỹ_ref, M_occ, Y_target, M_blend]."""
    h, w = planes.shape[1:]
    for _ in range(count):
        y0, x0 = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
        # float16 copies: views would keep every scene's full float32 planes alive (GBs)
        crop = planes[:, y0:y0 + patch, x0:x0 + patch].astype(np.float16)
        xs.append(crop[:3])
        ys.append(crop[3:])


def _write_split(out_dir: Path, split: str, xs: list, ys: list) -> None:
    np.savez(out_dir / f"{split}.npz", x=np.asarray(xs, np.float16), y=np.asarray(ys, np.float16))


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out_dir / "manifest.json")


def build_cache(out_dir: str | Path, *, scenes: int, patches_per_scene: int = 6, patch: int = 128,
                seed: int = 0, photos: list[str] | None = None, val_scenes: int | None = None,
                params: RigParams = RigParams(), progress: bool = True) -> dict:
    """Simulate ``scenes`` training scenes (+ validation scenes from the held-out photos) and
    write ``train.npz``, ``val.npz`` and ``manifest.json`` into ``out_dir``. Returns the manifest.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = photos if photos is not None else photo_paths()
    val_ids = [i for i in ids if short_id(i) in VALIDATION_PHOTOS]
    train_ids = [i for i in ids if i not in val_ids] or ids
    if val_scenes is None:
        val_scenes = max(2, scenes // 20) if val_ids else 0
    rng = np.random.default_rng(seed)
    loaded = {i: load_photo(i) for i in ids}
    manifest = {"seed": seed, "patch": patch, "patches_per_scene": patches_per_scene,
                "train_photos": [short_id(i) for i in train_ids],
                "val_photos": [short_id(i) for i in val_ids],
                "photo_files": {short_id(i): i for i in ids}, "params": params.as_dict()}
    for split, split_ids, n in (("train", train_ids, scenes), ("val", val_ids, val_scenes)):
        if n == 0:
            continue
        xs, ys, infos = [], [], []
        others = [loaded[i] for i in train_ids]   # occluders come from training photos only
        for k in tqdm(range(n), desc=f"simulating {split} scenes", disable=not progress):
            pid = split_ids[k % len(split_ids)]
            size = _scene_size(rng, loaded[pid].shape, patch)
            s = make_sample(loaded[pid], others, rng, params, size)
            infos.append({"photo": short_id(pid), **s["info"]})
            planes = np.stack([s["Y_src"], s["Y_ref"], s["M_occ"], s["Y_target"], s["M_blend"]])
            _cut_patches(planes, rng, patch, patches_per_scene, xs, ys)
        _write_split(out_dir, split, xs, ys)
        manifest[f"{split}_scenes"] = infos
        manifest[f"{split}_patches"] = len(xs)
    _write_manifest(out_dir, manifest)
    return manifest


def restrict_reference(planes: np.ndarray, centre: float) -> np.ndarray:
    """Planes [Y_src, Ỹ_ref, M_occ, Y_target, M_blend] with the reference kept only in the
    central ``centre`` fraction of each side (SelfDZSR's reference: T's centre crop); outside
    it Ỹ_ref = Y_src, M_occ = 1 and M_blend = 0, as where T sees nothing of the scene."""
    if centre >= 1.0:
        return planes
    h, w = planes.shape[1:]
    inside = np.zeros((h, w), bool)
    y0, x0 = round(h * (1 - centre) / 2), round(w * (1 - centre) / 2)
    inside[y0:h - y0, x0:w - x0] = True
    out = planes.copy()
    out[1][~inside] = planes[0][~inside]
    out[2][~inside] = 1.0
    out[4][~inside] = 0.0
    return out


def build_real_cache(out_dir: str | Path, train_pairs: list, val_pairs: list, *, scenes: int,
                     val_scenes: int | None = None, patches_per_scene: int = 6, patch: int = 128,
                     seed: int = 0, params: RigParams = RigParams(), ref_centre: float = 1.0,
                     source: str = "", w_upsampled: float | None = None,
                     progress: bool = True) -> dict:
    """The cache of :func:`build_cache` from real pairs (``real_pairs.RealPair``): the target
    and I_src are the pair's (real W optics), the reference the rig's second view of the
    target (``simulate.make_sample`` with ``w_capture``), without occluders (the rig's pasted
    occluders would need a W view the capture does not have). ``ref_centre`` < 1 keeps the
    reference only in the frame's centre (:func:`restrict_reference`).

    With ``w_upsampled`` (how much denser than its native sampling W's capture is stored) the
    samples are W-truth ones instead (``simulate.make_wide_truth_sample``): W's own capture is
    the label and the pair's real T the reference."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if val_scenes is None:
        val_scenes = max(2, scenes // 10) if val_pairs else 0
    rng = np.random.default_rng(seed)
    manifest = {"seed": seed, "patch": patch, "patches_per_scene": patches_per_scene,
                "source": source, "ref_centre": ref_centre, "w_upsampled": w_upsampled,
                "train_pairs": [p.name for p in train_pairs], "val_pairs": [p.name for p in val_pairs],
                "params": params.as_dict()}
    for split, pairs, n in (("train", train_pairs, scenes), ("val", val_pairs, val_scenes)):
        if n == 0 or not pairs:
            continue
        xs, ys, infos = [], [], []
        for k in tqdm(range(n), desc=f"real-pair {split} scenes", disable=not progress):
            pair = pairs[k % len(pairs)]
            if w_upsampled is None:
                size = _scene_size(rng, pair.target.shape, patch)
                s = make_sample(pair.target, [], rng, params, size, pair.w_capture, pair.w_density)
            else:
                s = make_wide_truth_sample(pair.w_capture, pair.target, rng, params, w_upsampled)
            infos.append({"pair": pair.name, **s["info"]})
            planes = np.stack([s["Y_src"], s["Y_ref"], s["M_occ"], s["Y_target"], s["M_blend"]])
            if min(planes.shape[1:]) < patch:
                raise InputError(f"pair {pair.name}: its W-truth working grid {planes.shape[2]}x"
                                 f"{planes.shape[1]} is smaller than the {patch} px patches")
            _cut_patches(restrict_reference(planes, ref_centre), rng, patch, patches_per_scene, xs, ys)
        _write_split(out_dir, split, xs, ys)
        manifest[f"{split}_scenes"] = infos
        manifest[f"{split}_patches"] = len(xs)
    _write_manifest(out_dir, manifest)
    return manifest


def load_cache(out_dir: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    with np.load(Path(out_dir) / f"{split}.npz") as z:
        return z["x"], z["y"]


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same random flip / transpose (the 8 symmetries of the square) on a batch's x and y."""
    k = int(rng.integers(8))
    if k & 1:
        x, y = x[..., ::-1], y[..., ::-1]
    if k & 2:
        x, y = x[..., ::-1, :], y[..., ::-1, :]
    if k & 4:
        x, y = x.swapaxes(-1, -2), y.swapaxes(-1, -2)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)
