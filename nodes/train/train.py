"""The training loop of the fusion UNet: Adam, cosine learning rate, checkpoints, resume, JSONL log."""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nodegraph.errors import InputError

from .data import augment, load_cache
from .export import load_onnx_weights, onnx_widths
from .losses import blended_output, harm_loss, total_loss
from .model import DETAIL_SIGMAS, WIDTHS, FusionUNet


@dataclass
class TrainConfig:
    steps: int = 15000
    batch: int = 16
    lr: float = 1e-3
    weights: dict = field(default_factory=lambda: {"l1": 1.0, "cobi": 0.02, "bright": 0.2, "harm": 3.0})
    trust_floor: float = 0.1   # L1 pixel weight = floor + (1 - floor) M_blend (1 without M_blend)
    widths: tuple = WIDTHS
    detail_sigmas: tuple = DETAIL_SIGMAS
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 250
    val_every: int = 250
    time_limit_s: float | None = None   # stop early; the learning-rate schedule follows the clock too
    # fraction of each batch drawn from each extra cache (``train(extra_data=...)``), by label;
    # the main cache gives the rest
    mix: dict = field(default_factory=dict)
    init: str | None = None   # ONNX model whose weights the training starts from (fine-tuning)
    teacher: str | None = None   # ONNX model to distil (the "distill" weight), any width


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, model, optim, step: int, cfg: TrainConfig, rng_state,
                    elapsed_s: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "step": step,
                "config": asdict(cfg), "rng": rng_state, "elapsed_s": elapsed_s}, tmp)
    os.replace(tmp, path)


def split_labels(yb: torch.Tensor, trust_floor: float
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(Y_target, L1 pixel weight, M_blend), the last two None without M_blend, from a label
    batch [Y_target(, M_blend)]."""
    if yb.shape[1] < 2:
        return yb, None, None
    m_blend = yb[:, 1:2]
    return yb[:, :1], trust_floor + (1.0 - trust_floor) * m_blend, m_blend


def load_teacher(path: str | Path, detail_sigmas: tuple) -> FusionUNet:
    """A frozen fusion UNet with the weights (and widths) of the exported model at ``path``."""
    teacher = FusionUNet(onnx_widths(path), tuple(detail_sigmas))
    load_onnx_weights(teacher, path)
    teacher.requires_grad_(False)
    return teacher.eval()


def evaluate(model: FusionUNet, x: np.ndarray, y: np.ndarray, weights: dict, trust_floor: float,
             batch: int = 32, teacher: FusionUNet | None = None) -> dict:
    """Mean losses on a validation set, plus L1 of the identity (Y_fusion = Y_src) for scale
    and, where the cache has M_blend, ``l1_blended``: L1 of what the pipeline outputs,
    M_blend Y_fusion + (1 - M_blend) Y_src (the number to choose models by), and
    ``harm_blended``: the no-harm term of that output, whatever its training weight."""
    model.eval()
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch].astype(np.float32))
            yb = torch.from_numpy(y[i:i + batch].astype(np.float32))
            target, pixel_weight, m_blend = split_labels(yb, trust_floor)
            fused, y_src = model(xb), xb[:, :1]
            y_teacher = teacher(xb) if teacher is not None else None
            _, parts = total_loss(fused, target, y_src, weights, pixel_weight, m_blend, y_teacher)
            parts["l1_identity"] = float((y_src - target).abs().mean())
            if m_blend is not None:
                blended = blended_output(fused, y_src, m_blend)
                parts["l1_blended"] = float((blended - target).abs().mean())
                # total_loss computed it already when the term has a weight
                parts["harm_blended"] = (parts["harm"] if "harm" in parts
                                         else float(harm_loss(blended, y_src, target)))
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(xb)
    model.train()
    return {k: v / len(x) for k, v in sums.items()}


def _load_split(data_dir: str | Path, split: str):
    return load_cache(data_dir, split) if (Path(data_dir) / f"{split}.npz").exists() else None


def batch_counts(batch: int, mix: dict) -> dict:
    """Patches per batch from each extra cache (round(batch * fraction)); the main cache ("")
    gets the rest. ValueError when the fractions leave the main cache nothing to give."""
    counts = {label: int(round(batch * fraction)) for label, fraction in mix.items()}
    counts[""] = batch - sum(counts.values())
    if counts[""] < 0 or any(n < 0 for n in counts.values()):
        raise ValueError(f"batch mix {mix} does not fit a batch of {batch}")
    return counts


def _validate(model: FusionUNet, val_sets: dict, cfg: TrainConfig,
              teacher: FusionUNet | None) -> dict:
    """{"val": losses on the main cache's validation split, "val_LABEL": on an extra cache's}."""
    return {"val" + (f"_{label}" if label else ""):
            evaluate(model, *v, cfg.weights, cfg.trust_floor, teacher=teacher)
            for label, v in val_sets.items()}


def train(data_dir: str | Path, work_dir: str | Path, cfg: TrainConfig, resume: str | Path | None = None,
          progress: bool = True, extra_data: dict | None = None) -> tuple[FusionUNet, dict]:
    """Train on the cache in ``data_dir`` (and the caches ``extra_data`` = {label: dir}, mixed
    into each batch by ``cfg.mix``); checkpoints and ``log.jsonl`` go to ``work_dir``.

    Starts from the weights of ``cfg.init`` (an exported model) when given, and distils
    ``cfg.teacher`` (another exported model) when given. Returns the trained
    model and a summary (steps, wall time, last and validation losses; ``val_LABEL`` for each
    extra cache with a validation split).
    """
    torch.set_num_threads(cfg.threads)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _set_seed(cfg.seed)
    extra_data = extra_data or {}
    sources = {"": data_dir, **extra_data}
    counts = batch_counts(cfg.batch, {label: cfg.mix.get(label, 0.0) for label in extra_data})
    train_sets = {label: load_cache(d, "train") for label, d in sources.items() if counts[label] > 0}
    val_sets = {label: v for label, d in sources.items() if (v := _load_split(d, "val")) is not None}
    model = FusionUNet(tuple(cfg.widths), tuple(cfg.detail_sigmas))
    if cfg.init:
        load_onnx_weights(model, cfg.init)
    teacher = load_teacher(cfg.teacher, cfg.detail_sigmas) if cfg.teacher else None
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    start, elapsed0 = 0, 0.0
    if resume:
        try:  # weights_only: tensors and plain data only; a pickled object could run code
            ck = torch.load(resume, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - unreadable, not a checkpoint, or not only weights
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise InputError(f"cannot resume from {str(resume)!r}: {first_line}") from None
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optim"])
        start = int(ck["step"])
        rng.bit_generator.state = ck["rng"]
        elapsed0 = float(ck.get("elapsed_s", 0.0))
    log_path = work_dir / "log.jsonl"
    t0 = time.time()
    last: dict = {}
    ema = None
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="training fusion",
               disable=not progress)
    with open(log_path, "a") as log:
        for step in bar:
            done = step / cfg.steps
            if cfg.time_limit_s:
                done = max(done, (time.time() - t0 + elapsed0) / cfg.time_limit_s)
                if done >= 1.0:
                    break
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * done))
            for g in optim.param_groups:
                g["lr"] = lr
            xs, ys = [], []
            for label, (x, y) in train_sets.items():
                idx = rng.integers(0, len(x), counts[label])
                xs.append(x[idx].astype(np.float32))
                ys.append(y[idx].astype(np.float32))
            xb, yb = augment(np.concatenate(xs), np.concatenate(ys), rng)
            xb, yb = torch.from_numpy(xb), torch.from_numpy(yb)
            target, pixel_weight, m_blend = split_labels(yb, cfg.trust_floor)
            with torch.no_grad():
                y_teacher = teacher(xb) if teacher is not None else None
            loss, parts = total_loss(model(xb), target, xb[:, :1], cfg.weights, pixel_weight,
                                     m_blend, y_teacher)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            value = float(loss.detach())
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            bar.set_postfix(loss=f"{ema:.4f}", l1=f"{parts['l1']:.4f}")
            last = {"step": step + 1, "loss": value, **parts, "lr": lr,
                    "elapsed_s": round(time.time() - t0 + elapsed0, 1)}
            if (step + 1) % cfg.val_every == 0:
                last.update(_validate(model, val_sets, cfg, teacher))
            log.write(json.dumps(last) + "\n")
            log.flush()
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                save_checkpoint(work_dir / "checkpoint.pt", model, optim, step + 1, cfg,
                                rng.bit_generator.state, time.time() - t0 + elapsed0)
    bar.close()
    steps_done = last.get("step", start)
    if steps_done % cfg.checkpoint_every:
        save_checkpoint(work_dir / "checkpoint.pt", model, optim, steps_done, cfg,
                        rng.bit_generator.state, time.time() - t0 + elapsed0)
    summary = {"steps": steps_done, "steps_planned": cfg.steps, "resumed_from": start,
               "wall_s": round(time.time() - t0 + elapsed0, 1),
               "last": last, "config": asdict(cfg)}
    summary.update(_validate(model, val_sets, cfg, teacher))
    model.eval()
    return model, summary
