"""Training smoke test: simulate a few scenes, train a few steps, export, compare onnxruntime with torch.

Needs the optional 'train' extra (PyTorch); skipped without it.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the optional 'train' extra) is not installed")

from nodegraph.nodes.train import cli  # noqa: E402
from nodegraph.nodes.train.data import build_cache, load_cache  # noqa: E402
from nodegraph.nodes.train.export import export_onnx, onnx_widths  # noqa: E402
from nodegraph.nodes.train.model import FusionUNet  # noqa: E402
from nodegraph.nodes.train.train import TrainConfig, evaluate, train  # noqa: E402

PHOTOS = ["skimage:astronaut", "skimage:chelsea", "skimage:rocket"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("fusion_cache")
    manifest = build_cache(d, scenes=4, patches_per_scene=6, patch=64, seed=1, photos=PHOTOS,
                           progress=False)
    assert manifest["train_patches"] == 24 and manifest["train_photos"] == [p for p in PHOTOS]
    return d


def test_cache_planes_are_sane(cache):
    x, y = load_cache(cache)
    assert x.shape == (24, 3, 64, 64) and y.shape == (24, 2, 64, 64)
    x, y = x.astype(np.float32), y.astype(np.float32)
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    # the loss weight M_blend is a weight in [0, 1] that trusts T somewhere but not everywhere
    m_blend = y[:, 1]
    assert m_blend.min() >= 0 and m_blend.max() <= 1 and 0.05 < m_blend.mean() < 0.999
    # src is a degraded version of the target: close to it but not equal
    err = np.abs(x[:, 0] - y[:, 0].astype(np.float32)).mean()
    assert 0.002 < err < 0.2


def test_loss_falls_and_export_matches_torch(cache, tmp_path):
    cfg = TrainConfig(steps=300, batch=8, lr=3e-3, seed=0, threads=1, checkpoint_every=100,
                      val_every=10 ** 9, weights={"l1": 1.0, "cobi": 0.02, "bright": 0.2, "harm": 1.0})
    x, y = load_cache(cache)
    before = evaluate(FusionUNet(), x, y, cfg.weights, cfg.trust_floor)
    model, summary = train(cache, tmp_path / "work", cfg, progress=False)
    after = evaluate(model, x, y, cfg.weights, cfg.trust_floor)
    # the untrained net is the identity on Y_src (zero head): blended or not, its L1 is the identity's
    assert before["l1_blended"] == pytest.approx(before["l1_identity"], abs=1e-6)
    assert before["harm_blended"] == 0.0   # ... and so never worse than Y_src
    # a few hundred steps on 24 patches only start to learn the high-pass of Ỹ_ref (the simulated
    # T view differs from W in shading and highlights); a training loop that does not learn
    # stays at exactly the identity's loss
    assert after["l1"] < 0.98 * before["l1"]
    assert after["l1_blended"] < before["l1_blended"]
    assert summary["steps"] == 300 and (tmp_path / "work" / "checkpoint.pt").exists()
    lines = (tmp_path / "work" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 300 and {"l1", "cobi", "bright", "harm", "loss"} <= set(json.loads(lines[-1]))
    err = export_onnx(model, tmp_path / "m.onnx", check_size=(128, 192))
    assert err <= 1e-4


def test_distillation_brings_a_narrower_student_to_its_teacher(cache, tmp_path):
    torch.manual_seed(0)
    teacher = FusionUNet()
    with torch.no_grad():   # a teacher that is far from the identity the student starts at
        for parameter in teacher.parameters():
            parameter.normal_(0.0, 0.05)
    export_onnx(teacher, tmp_path / "teacher.onnx")
    assert onnx_widths(tmp_path / "teacher.onnx") == teacher.widths
    narrow = (8, 12, 16, 24, 32)
    cfg = TrainConfig(steps=200, batch=8, lr=3e-3, seed=0, threads=1, checkpoint_every=10 ** 9,
                      val_every=10 ** 9, widths=narrow, teacher=str(tmp_path / "teacher.onnx"),
                      weights={"l1": 0.0, "distill": 1.0})
    x, y = load_cache(cache)
    student, _ = train(cache, tmp_path / "work", cfg, progress=False)
    assert student.widths == narrow
    inputs = torch.from_numpy(x[:8].astype(np.float32))
    with torch.no_grad():
        start_gap = float((inputs[:, :1] - teacher(inputs)).abs().mean())   # the untrained student
        gap = float((student(inputs) - teacher(inputs)).abs().mean())
    # the L1 to the teacher is the only loss: without the teacher's output reaching it (or with
    # the teacher trained along) the student would stay at the identity or chase a moving target
    assert gap < 0.5 * start_gap
    log = json.loads((tmp_path / "work" / "log.jsonl").read_text().splitlines()[-1])
    assert "distill" in log and "l1" in log


def test_resume_continues_from_checkpoint(cache, tmp_path):
    cfg = TrainConfig(steps=4, batch=4, seed=0, threads=1, checkpoint_every=2, val_every=10 ** 9)
    train(cache, tmp_path / "a", cfg, progress=False)
    cfg6 = TrainConfig(steps=6, batch=4, seed=0, threads=1, checkpoint_every=2, val_every=10 ** 9)
    _, summary = train(cache, tmp_path / "a", cfg6, resume=tmp_path / "a" / "checkpoint.pt",
                       progress=False)
    assert summary["resumed_from"] == 4 and summary["steps"] == 6


def test_untrained_model_through_the_node_is_identity(tmp_path):
    from nodegraph.nodes.hzsr.fusion_unet import fusion_unet
    export_onnx(FusionUNet(), tmp_path / "id.onnx")
    rng = np.random.default_rng(0)
    src = rng.random((70, 90, 3)).astype(np.float32)
    ref = rng.random((70, 90, 3)).astype(np.float32)
    out = fusion_unet(src, ref, np.zeros((70, 90), np.float32), model=str(tmp_path / "id.onnx"),
                      tile=64, overlap=64, threads=1)
    np.testing.assert_allclose(out, src, atol=1e-5)


def test_cli_registers_train_fusion():
    parser = argparse.ArgumentParser(prog="nodegraph")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "fusion", "--data", "d", "--out", "m.onnx", "--steps", "5",
                              "--resume", "c.pt", "--seed", "3"])
    assert args.handler is cli.run_fusion
    assert (args.steps, args.seed, args.resume, args.data) == (5, 3, "c.pt", "d")
    assert args.detail_sigmas is None   # the model's DETAIL_SIGMAS
    args = parser.parse_args(["train", "fusion", "--out", "m.onnx", "--detail-sigmas", "1", "2"])
    assert args.detail_sigmas == [1.0, 2.0]


def test_detail_sigmas_set_the_number_of_band_gains(cache, tmp_path):
    cfg = TrainConfig(steps=2, batch=2, seed=0, threads=1, val_every=10 ** 9, detail_sigmas=(1.0, 2.0))
    model, summary = train(cache, tmp_path / "w", cfg, progress=False)
    assert model.gains.out_channels == 2 * 16 and model.bands.sigmas == (1.0, 2.0)
    assert tuple(summary["config"]["detail_sigmas"]) == (1.0, 2.0)


@pytest.mark.parametrize("sigmas", [(1.0, 2.0, 4.0), (1.0, 2.0), (0.7,)])
def test_detail_bands_match_a_plain_gaussian_stack(sigmas):
    import cv2

    from nodegraph.nodes.train.model import DetailBands
    rng = np.random.default_rng(3)
    y = rng.random((37, 53)).astype(np.float32)
    # reference: OpenCV's Gaussian blur, edge-replicated, each kernel at radius round(3 sigma)
    levels = [y.astype(np.float64)] + [
        cv2.GaussianBlur(y.astype(np.float64), (2 * int(3 * s + 0.5) + 1,) * 2, s,
                         borderType=cv2.BORDER_REPLICATE) for s in sigmas]
    expected = np.stack([levels[i] - levels[i + 1] for i in range(len(sigmas))])
    got = DetailBands(sigmas)(torch.from_numpy(y)[None, None])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)
    # the bands and the last blur telescope back to the image
    np.testing.assert_allclose(got.sum(axis=0) + levels[-1], y, atol=2e-6)


def test_rig_settings_that_disagree_with_an_existing_cache_are_refused(cache, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="nodegraph")
    cli.register(parser.add_subparsers(dest="command"))
    before = (cache / "train.npz").stat().st_mtime_ns
    for rig, message in ((["zoom=1.5,5"], "other rig settings"), (["zoom=fast"], "zoom=fast")):
        args = parser.parse_args(["train", "fusion", "--data", str(cache), "--out",
                                  str(tmp_path / "m.onnx"), "--steps", "1", "--rig", *rig])
        assert args.handler(args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists() and (cache / "train.npz").stat().st_mtime_ns == before


def test_resume_loads_weights_only_and_refuses_pickled_code(cache, tmp_path):
    import os
    import pickle

    import torch

    from nodegraph.errors import InputError

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "owned"),))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, evil, pickle_module=pickle)
    cfg = TrainConfig(steps=2, batch=4, seed=0, threads=1, checkpoint_every=2, val_every=10 ** 9)
    with pytest.raises(InputError, match="cannot resume from"):
        train(cache, tmp_path / "w", cfg, resume=evil, progress=False)
    assert not (tmp_path / "owned").exists()
