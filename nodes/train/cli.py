"""``nodegraph train fusion``: simulate the rig and/or read real pairs, train, export ONNX.

Registered through the ``nodegraph.commands`` entry point (``train = "nodegraph.nodes.train.cli:register"``).
torch is imported only when the command runs, so ``nodegraph --help`` works without it.

Data: a simulated patch cache (``--data``), real low/high pairs registered by their authors
(``--aligned-pairs``, e.g. City100) and a user's own W/T pairs without ground truth
(``--pairs``, self-supervised as in SelfDZSR++); see ``real_pairs``. With ``--pairs`` the
command fine-tunes the bundled model by default: one command adapts it to a phone.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from nodegraph.errors import InputError
from nodegraph.files import check_output_options

from . import ALIGNED_VALIDATION, zoom_to_learn

DEFAULT_SCENES = 800
SCENES_PER_ALIGNED_PAIR = 5
SCENES_PER_USER_PAIR = 30
FINE_TUNE_LR = 1e-4
PAIRS_COBI = 0.1
# City100's L is its short-focal capture upsampled 2x onto H's grid: box-down and bicubic-up by
# 2 gives L back to 0.006 RMS, by 1.5 only to 0.011-0.016 (pairs 005, 030, 060)
W_UPSAMPLED = 2.0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a default to show (not on required options,
    flags or options whose default depends on other options, which say so in their help)."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False) or action.default == []:
            return action.help
        return super()._get_help_string(action)


def register(subparsers) -> None:
    """Add ``train`` (with its ``fusion`` and ``zoom`` sub-commands) to an argparse subparsers object."""
    train = subparsers.add_parser("train", help="train a learned model of the project")
    sub = train.add_subparsers(dest="train_what", required=True)
    p = sub.add_parser(
        "fusion", help="train the HZSR fusion UNet and export it to ONNX",
        formatter_class=_HelpFormatter,
        description="Train (or fine-tune) the fusion UNet of hzsr.fusion_unet and write it as ONNX. "
                    "Adapt the bundled model to your own phone: put pairs of photos taken at the "
                    "same instant in folders (wide.jpg + tele.jpg each) and run "
                    "'nodegraph train fusion --pairs DIR --out my.onnx', then "
                    "'nodegraph run pipelines/hzsr.yaml --set fusion.model=my.onnx'.")
    src = p.add_argument_group("data")
    src.add_argument("--data", metavar="DIR",
                     help="simulated patch cache; built there first if it holds no train.npz "
                          "(default: WORK/data, unless real pairs are given: then no simulated data)")
    src.add_argument("--photos", nargs="+", metavar="PHOTO",
                     help="photo files (or skimage:NAME) to simulate from (default: the built-in list: "
                          "scikit-image photos + Debian wallpaper photos, see the model card)")
    src.add_argument("--scenes", type=int, default=DEFAULT_SCENES,
                     help="simulated scenes for a new cache")
    src.add_argument("--patches-per-scene", type=int, default=6, help="patches cut from each scene")
    src.add_argument("--patch", type=int, default=128, help="patch side, px (multiple of 64)")
    src.add_argument("--rig", nargs="+", default=[], metavar="NAME=VALUE",
                     help="simulated-rig settings for a new cache (fields of "
                          "nodegraph.nodes.train.simulate.RigParams, e.g. zoom=1.5,5 occluders=0,5)")
    real = p.add_argument_group("real pairs")
    real.add_argument("--pairs", metavar="DIR",
                      help="your own W/T pairs, no ground truth: DIR or its subfolders hold wide.* and "
                           "tele.* (same instant). Self-supervised (SelfDZSR++): T's frame is the "
                           "target, W's matching region (found by hzsr.ratio + hzsr.align) the input, "
                           "the rig's second view of T's centre the reference")
    real.add_argument("--aligned-pairs", metavar="DIR",
                      help="registered real pairs NNNL.png (short focal length: the W capture) and "
                           "NNNH.png (long: the target), e.g. City100")
    real.add_argument("--aligned-val", default=",".join(ALIGNED_VALIDATION), metavar="NNN,...",
                      help="--aligned-pairs held out of training, for validation only")
    real.add_argument("--real-data", metavar="DIR",
                      help="patch cache of the real pairs; built there first if it holds no "
                           "train.npz (default: WORK/real_data)")
    real.add_argument("--real-scenes", type=int, metavar="N",
                      help=f"scenes cut from the real pairs for a new cache (default: "
                           f"{SCENES_PER_ALIGNED_PAIR} per aligned pair, {SCENES_PER_USER_PAIR} per "
                           "pair of --pairs)")
    real.add_argument("--real-fraction", type=float, default=0.5,
                      help="fraction of each batch from the real pairs when a simulated cache "
                           "(--data) is used too")
    real.add_argument("--wide-truth", type=float, metavar="F",
                      help="fraction of each batch from W-truth samples of --aligned-pairs (DCSR's "
                           "self-supervised real-image adaptation): W's own capture is the label, "
                           "W box-downsampled by 2 the input and the pair's real long-focal capture "
                           "the reference, at T densities 1.2-2 over W's input")
    real.add_argument("--w-upsampled", type=float, default=W_UPSAMPLED, metavar="K",
                      help="how many times denser than its native sampling --aligned-pairs stores W "
                           "(City100's L: 2, see the model card)")
    real.add_argument("--wide-truth-data", metavar="DIR",
                      help="patch cache of the W-truth samples; built there first if it holds no "
                           "train.npz (default: WORK/wide_truth_data)")
    real.add_argument("--ref-centre", type=float, metavar="F",
                      help="the reference covers the central F of each side of a real-pair scene "
                           "(default: 0.5 with --pairs, SelfDZSR's centre crop; else 1)")
    p.add_argument("--out", required=True, metavar="MODEL.onnx", help="ONNX file to write")
    p.add_argument("--work", metavar="DIR", help="checkpoints and log.jsonl (default: next to --out)")
    p.add_argument("--init", metavar="MODEL.onnx",
                   help="start from this exported model's weights ('bundled': the shipped "
                        "nodes/hzsr/models/fusion_unet.onnx; 'none': from scratch); "
                        "default: bundled with --pairs, else none")
    p.add_argument("--widths", type=int, nargs=5, metavar="C",
                   help="channels of the UNet's five levels, finest first (default: "
                        "nodegraph.nodes.train.model.WIDTHS, 24 32 48 64 96); with --init, "
                        "those of the model given")
    p.add_argument("--teacher", metavar="MODEL.onnx",
                   help="distil this exported model ('bundled': the shipped one): adds the L1 "
                        "between the network's and the teacher's output, weight --w-distill; "
                        "with --widths, trains a smaller network to give what it gives")
    p.add_argument("--w-distill", type=float, default=1.0,
                   help="weight of the distillation term (only with --teacher)")
    p.add_argument("--steps", type=int, default=15000, help="training steps (batches)")
    p.add_argument("--batch", type=int, default=16, help="patches per batch")
    p.add_argument("--lr", type=float,
                   help=f"Adam learning rate, cosine decay (default: 1e-3 from scratch, "
                        f"{FINE_TUNE_LR:g} from --init)")
    p.add_argument("--w-cobi", type=float,
                   help=f"weight of the CoBi loss (default: 0.02; {PAIRS_COBI:g} with --pairs, whose "
                        "targets are registered only patch-wise)")
    p.add_argument("--w-bright", type=float, default=0.2, help="weight of brightness consistency")
    p.add_argument("--w-harm", type=float, default=3.0,
                   help="weight of the no-harm term (the output's local L1 beyond Y_src's; "
                        "0 = off, as for the models before model 8)")
    p.add_argument("--trust-floor", type=float, default=0.1,
                   help="L1 pixel weight = floor + (1 - floor) M_blend; 1 = unweighted")
    p.add_argument("--detail-sigmas", type=float, nargs="+", metavar="PX",
                   help="Gaussians splitting Ỹ_ref into the detail path's band-pass layers "
                        "(default: nodegraph.nodes.train.model.DETAIL_SIGMAS, 1 2 4)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop after MIN minutes of training even before --steps (the learning-rate "
                        "schedule then follows the clock)")
    p.add_argument("--resume", metavar="CKPT", help="checkpoint.pt to continue from")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation and the training")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: on a shared 2-core machine, 2 OpenMP threads were "
                        "~10x slower per step than 1 under contention)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_fusion)
    zoom_to_learn.register(sub)


def _check_options(args) -> None:
    """InputError (exit 2, one line) for options that cannot work, before anything runs."""
    if args.patch % 64:
        raise InputError(f"--patch {args.patch}: must be a multiple of 64")
    for name in ("steps", "batch", "scenes", "patches_per_scene"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.real_scenes is not None and args.real_scenes < 1:
        raise InputError("--real-scenes must be at least 1")
    if not 0.0 < args.real_fraction < 1.0:
        raise InputError(f"--real-fraction {args.real_fraction}: must lie strictly between 0 and 1")
    if args.wide_truth is not None:
        if not args.aligned_pairs:
            raise InputError("--wide-truth needs --aligned-pairs (the W-truth samples are cut from them)")
        if not 0.0 < args.wide_truth < 1.0:
            raise InputError(f"--wide-truth {args.wide_truth}: must lie strictly between 0 and 1")
        if args.data and args.real_fraction + args.wide_truth >= 1.0:
            raise InputError(f"--real-fraction {args.real_fraction} + --wide-truth {args.wide_truth}: "
                             "must leave part of each batch to the simulated cache (--data)")
    if args.w_upsampled < 1.0:
        raise InputError(f"--w-upsampled {args.w_upsampled}: must be at least 1")
    if args.ref_centre is not None and not 0.0 < args.ref_centre <= 1.0:
        raise InputError(f"--ref-centre {args.ref_centre}: must lie in (0, 1]")
    for option, folder in (("--pairs", args.pairs), ("--aligned-pairs", args.aligned_pairs)):
        if folder is not None and not os.path.isdir(folder):
            raise InputError(f"{option} {folder}: no such folder")
    if args.pairs and args.aligned_pairs:
        raise InputError("--pairs and --aligned-pairs: give one kind of real pairs per run")
    if args.widths is not None and min(args.widths) < 1:
        raise InputError(f"--widths {' '.join(map(str, args.widths))}: every level needs at least 1 channel")
    if args.w_distill < 0:
        raise InputError(f"--w-distill {args.w_distill}: must not be negative")
    for option, path in (("--resume", args.resume), ("--init", _init_path(args)),
                         ("--teacher", _model_file(args.teacher))):
        if path is not None and not os.path.isfile(path):
            raise InputError(f"{option} {path}: no such file")


def _model_file(value: str | None) -> str | None:
    """The file an ONNX model option names: None for 'none' (or unset), the shipped model for
    'bundled'."""
    if value in (None, "none"):
        return None
    if value == "bundled":
        from nodegraph.nodes.hzsr.fusion_unet import BUNDLED_MODEL, resolve_model
        return resolve_model(BUNDLED_MODEL)
    return value


def _init_path(args) -> str | None:
    return _model_file(args.init or ("bundled" if args.pairs else "none"))


def _existing_cache(cache: Path, option: str, wanted: dict) -> bool:
    """Whether ``cache`` holds a built cache; InputError naming ``option`` if it was built
    with other settings (``wanted``: manifest entries that must match)."""
    if not (cache / "train.npz").exists():
        return False
    made = json.loads((cache / "manifest.json").read_text())
    if any(made.get(key) != value for key, value in wanted.items()):
        settings = ", ".join(f"{key} {made.get(key)}" for key in wanted)
        raise InputError(f"{option} {cache}: that cache was made with {settings}; "
                         f"give a new {option} folder")
    return True


def _aligned_pairs(args) -> tuple[list, list]:
    """The --aligned-pairs (training, validation) pairs."""
    held_out = tuple(v.strip() for v in args.aligned_val.split(",") if v.strip())
    return _registered_aligned_pairs(os.path.abspath(args.aligned_pairs), held_out)


@functools.lru_cache(maxsize=1)
def _registered_aligned_pairs(folder: str, held_out: tuple[str, ...]) -> tuple[list, list]:
    # both real caches cut from the same pairs: register them (tens of seconds) once
    from .real_pairs import load_aligned_pairs
    return load_aligned_pairs(folder, held_out)


def _real_cache(args, work: Path, rig, progress: bool) -> Path | None:
    """The real-pair patch cache (built first if needed), or None without real pairs."""
    if not (args.pairs or args.aligned_pairs):
        return None
    from .data import build_real_cache
    from .real_pairs import load_user_pairs

    folder = os.path.abspath(args.pairs or args.aligned_pairs)
    cache = Path(args.real_data) if args.real_data else work / "real_data"
    centre = args.ref_centre if args.ref_centre is not None else (0.5 if args.pairs else 1.0)
    if _existing_cache(cache, "--real-data", {"source": folder, "ref_centre": centre}):
        return cache
    if args.pairs:
        train_pairs, skipped = load_user_pairs(folder)
        for line in skipped:
            print(f"note: skipped {line}", file=sys.stderr)
        if not train_pairs:
            raise InputError(f"--pairs {args.pairs}: no usable W/T pair (folders with wide.* and "
                             "tele.* whose footprint the pipeline's registration finds)")
        val_pairs, per_pair = [], SCENES_PER_USER_PAIR
    else:
        train_pairs, val_pairs = _aligned_pairs(args)
        per_pair = SCENES_PER_ALIGNED_PAIR
    scenes = args.real_scenes or per_pair * len(train_pairs)
    build_real_cache(cache, train_pairs, val_pairs, scenes=scenes,
                     val_scenes=max(2, scenes // 10) if val_pairs else 0,
                     patches_per_scene=args.patches_per_scene, patch=args.patch, seed=args.seed,
                     params=rig, ref_centre=centre, source=folder, progress=progress)
    return cache


def _wide_truth_cache(args, work: Path, rig, progress: bool) -> Path | None:
    """The W-truth patch cache of --aligned-pairs (built first if needed), or None."""
    if args.wide_truth is None:
        return None
    from .data import build_real_cache

    folder = os.path.abspath(args.aligned_pairs)
    cache = Path(args.wide_truth_data) if args.wide_truth_data else work / "wide_truth_data"
    if _existing_cache(cache, "--wide-truth-data", {"source": folder, "w_upsampled": args.w_upsampled}):
        return cache
    train_pairs, val_pairs = _aligned_pairs(args)
    scenes = args.real_scenes or SCENES_PER_ALIGNED_PAIR * len(train_pairs)
    build_real_cache(cache, train_pairs, val_pairs, scenes=scenes,
                     val_scenes=max(2, scenes // 10) if val_pairs else 0,
                     patches_per_scene=args.patches_per_scene, patch=args.patch, seed=args.seed,
                     params=rig, source=folder, w_upsampled=args.w_upsampled, progress=progress)
    return cache


def _simulated_cache(args, work: Path, rig, progress: bool, with_real: bool) -> Path | None:
    """The simulated patch cache (built first if needed); None when only real pairs are used."""
    if with_real and not args.data:
        return None
    from .data import build_cache

    data = Path(args.data) if args.data else work / "data"
    if not (data / "train.npz").exists():
        build_cache(data, scenes=args.scenes, patches_per_scene=args.patches_per_scene,
                    patch=args.patch, seed=args.seed, photos=args.photos, params=rig,
                    progress=progress)
    elif args.rig:
        cached = json.loads((data / "manifest.json").read_text())["params"]
        # through JSON like the manifest, so tuples compare as the lists it stored
        if cached != json.loads(json.dumps(rig.as_dict())):
            raise InputError(f"--rig: the cache in {data} was simulated with other rig settings "
                             "(its manifest.json); give a new --data folder")
    return data


def run_fusion(args) -> int:
    """The command: exit 0, 2 (bad options, paths or inputs: one line naming the option) or 1."""
    try:
        return _run_fusion(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run_fusion(args) -> int:
    try:
        import torch  # noqa: F401  (the optional 'train' extra)
    except ImportError:
        print("nodegraph train needs PyTorch: pip install 'nodegraph[train]'", file=sys.stderr)
        return 2
    from .export import export_onnx, onnx_widths, runtime_layout
    from .model import DETAIL_SIGMAS, WIDTHS, count_parameters, gflops
    from .simulate import RigParams
    from .train import TrainConfig, train

    _check_options(args)
    try:
        rig = RigParams().with_overrides(args.rig)
    except ValueError as err:
        raise InputError(f"--rig: {err}") from None
    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_suffix("").parent / (out.stem + "_work")
    # Before minutes of simulation and training, not at the export at the end.
    check_output_options({"--out": out, "--work": work, "--data": args.data,
                          "--real-data": args.real_data, "--wide-truth-data": args.wide_truth_data},
                         folders=("--work", "--data", "--real-data", "--wide-truth-data"),
                         suffixes={"--out": (".onnx",)})
    progress = not args.no_progress
    init = _init_path(args)
    real = _real_cache(args, work, rig, progress)
    wide_truth = _wide_truth_cache(args, work, rig, progress)
    simulated = _simulated_cache(args, work, rig, progress, real is not None)
    # the simulated cache, else the real pairs', gives each batch what the fractions leave
    main = simulated or real
    extra = {label: cache for label, cache in (("real", real), ("wide_truth", wide_truth))
             if cache is not None and cache != main}
    mix = {"real": args.real_fraction, "wide_truth": args.wide_truth}
    mix = {label: mix[label] for label in extra}
    w_cobi = args.w_cobi if args.w_cobi is not None else (PAIRS_COBI if args.pairs else 0.02)
    try:
        widths = tuple(args.widths) if args.widths else (onnx_widths(init) if init else WIDTHS)
    except ValueError as err:
        raise InputError(f"--init: {err}") from None
    teacher = _model_file(args.teacher)
    cfg = TrainConfig(steps=args.steps, batch=args.batch, seed=args.seed,
                      lr=args.lr if args.lr is not None else (FINE_TUNE_LR if init else 1e-3),
                      threads=args.threads, checkpoint_every=args.checkpoint_every,
                      time_limit_s=args.time_limit * 60 if args.time_limit else None,
                      weights={"l1": 1.0, "cobi": w_cobi, "bright": args.w_bright,
                               "harm": args.w_harm,
                               "distill": args.w_distill if teacher else 0.0},
                      trust_floor=args.trust_floor, detail_sigmas=tuple(args.detail_sigmas or DETAIL_SIGMAS),
                      mix=mix, init=init, teacher=teacher, widths=widths)
    try:
        model, summary = train(main, work, cfg, resume=args.resume, progress=progress,
                               extra_data=extra)
        summary["onnx_max_abs_diff_vs_torch"] = export_onnx(model, out)
        runtime_layout(out, out)  # the layout hzsr.fusion_unet runs fastest
    except ValueError as err:   # a --init, --teacher or --resume file that does not fit the model
        raise InputError(str(err)) from None
    except (OSError, RuntimeError, AssertionError) as err:
        print(f"error: nodegraph train fusion failed: {err}", file=sys.stderr)
        return 1
    summary["parameters"] = count_parameters(model)
    summary["gflops_12mp"] = round(gflops(model, 3000, 4000), 2)
    summary["data_manifests"] = [str(d / "manifest.json") for d in (simulated, real, wide_truth)
                                 if d is not None and (d / "manifest.json").exists()]
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("steps", "wall_s", "val", "val_real", "val_wide_truth",
                                              "onnx_max_abs_diff_vs_torch", "parameters",
                                              "gflops_12mp") if k in summary}, indent=1))
    print(f"wrote {out}")
    return 0
