"""``nodegraph train fusion``: simulate the rig (or reuse a patch cache), train, export ONNX.

Registered through the ``nodegraph.commands`` entry point (``train = "nodegraph.nodes.train.cli:register"``).
torch is imported only when the command runs, so ``nodegraph --help`` works without it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nodegraph.files import check_output_options


def register(subparsers) -> None:
    """Add ``train`` (with its ``fusion`` sub-command) to an argparse subparsers object."""
    train = subparsers.add_parser("train", help="train a learned model of the project")
    sub = train.add_subparsers(dest="train_what", required=True)
    p = sub.add_parser("fusion", help="train the HZSR fusion UNet and export it to ONNX",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("data")
    src.add_argument("--data", metavar="DIR",
                     help="patch cache directory; built there first if it holds no train.npz")
    src.add_argument("--photos", nargs="+", metavar="PHOTO",
                     help="photo files (or skimage:NAME) to simulate from; default: the built-in list "
                          "(scikit-image photos + Debian wallpaper photos, see the model card)")
    src.add_argument("--scenes", type=int, default=800, help="simulated scenes for a new cache")
    src.add_argument("--patches-per-scene", type=int, default=6)
    src.add_argument("--patch", type=int, default=128, help="patch side, px (multiple of 64)")
    src.add_argument("--rig", nargs="+", default=[], metavar="NAME=VALUE",
                     help="simulated-rig settings for a new cache (fields of "
                          "nodegraph.nodes.train.simulate.RigParams, e.g. zoom=1.5,5 occluders=0,5)")
    p.add_argument("--out", required=True, metavar="MODEL.onnx", help="ONNX file to write")
    p.add_argument("--work", metavar="DIR", help="checkpoints and log.jsonl (default: next to --out)")
    p.add_argument("--steps", type=int, default=15000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine decay)")
    p.add_argument("--w-cobi", type=float, default=0.02, help="weight of the CoBi loss")
    p.add_argument("--w-bright", type=float, default=0.2, help="weight of brightness consistency")
    p.add_argument("--w-harm", type=float, default=3.0,
                   help="weight of the no-harm term (the output's local L1 beyond Y_src's; "
                        "0 = off, as for the models before the shipped one)")
    p.add_argument("--trust-floor", type=float, default=0.1,
                   help="L1 pixel weight = floor + (1 - floor) M_blend; 1 = unweighted")
    p.add_argument("--detail-sigmas", type=float, nargs="+", metavar="PX",
                   help="Gaussians splitting Ỹ_ref into the detail path's band-pass layers "
                        "(default: nodegraph.nodes.train.model.DETAIL_SIGMAS, 1 2 4)")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop after MIN minutes of training even before --steps (the learning-rate "
                        "schedule then follows the clock)")
    p.add_argument("--resume", metavar="CKPT", help="checkpoint.pt to continue from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: on a shared 2-core machine, 2 OpenMP threads were "
                        "~10x slower per step than 1 under contention)")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_fusion)


def run_fusion(args) -> int:
    try:
        import torch  # noqa: F401  (the optional 'train' extra)
    except ImportError:
        print("nodegraph train needs PyTorch: pip install 'nodegraph[train]'", file=sys.stderr)
        return 2
    from .data import build_cache
    from .export import export_onnx
    from .model import DETAIL_SIGMAS, count_parameters, gflops
    from .simulate import RigParams
    from .train import TrainConfig, train

    if args.patch % 64:
        print("--patch must be a multiple of 64", file=sys.stderr)
        return 2
    try:
        rig = RigParams().with_overrides(args.rig)
    except ValueError as err:
        print(f"--rig: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_suffix("").parent / (out.stem + "_work")
    data = Path(args.data) if args.data else work / "data"
    # Before minutes of simulation and training, not at the export at the end.
    check_output_options({"--out": out, "--work": work, "--data": data},
                         folders=("--work", "--data"), suffixes={"--out": (".onnx",)})
    progress = not args.no_progress
    if not (data / "train.npz").exists():
        build_cache(data, scenes=args.scenes, patches_per_scene=args.patches_per_scene,
                    patch=args.patch, seed=args.seed, photos=args.photos, params=rig,
                    progress=progress)
    elif args.rig:
        cached = json.loads((data / "manifest.json").read_text())["params"]
        # through JSON like the manifest, so tuples compare as the lists it stored
        if cached != json.loads(json.dumps(rig.as_dict())):
            print(f"--rig: the cache in {data} was simulated with other rig settings "
                  "(its manifest.json); give a new --data folder", file=sys.stderr)
            return 2
    cfg = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                      threads=args.threads, checkpoint_every=args.checkpoint_every,
                      time_limit_s=args.time_limit * 60 if args.time_limit else None,
                      weights={"l1": 1.0, "cobi": args.w_cobi, "bright": args.w_bright,
                               "harm": args.w_harm},
                      trust_floor=args.trust_floor, detail_sigmas=tuple(args.detail_sigmas or DETAIL_SIGMAS))
    model, summary = train(data, work, cfg, resume=args.resume, progress=progress)
    summary["onnx_max_abs_diff_vs_torch"] = export_onnx(model, out)
    summary["parameters"] = count_parameters(model)
    summary["gflops_12mp"] = round(gflops(model, 3000, 4000), 2)
    manifest = data / "manifest.json"
    if manifest.exists():
        summary["data_manifest"] = str(manifest)
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("steps", "wall_s", "val", "onnx_max_abs_diff_vs_torch",
                                              "parameters", "gflops_12mp") if k in summary}, indent=1))
    print(f"wrote {out}")
    return 0
