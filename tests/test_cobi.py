"""CoBi (Zoom to Learn eq. 2) against a brute-force double loop; its gradient exists."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the optional 'train' extra) is not installed")

from nodegraph.nodes.train.losses import brightness_loss, cobi_loss  # noqa: E402


def cobi_brute_force(p_img: np.ndarray, q_img: np.ndarray, n: int, stride: int, w_s: float,
                     eps: float = 1e-5) -> float:
    """1/N sum_i min_j (1 - cos(p_i, q_j) + w_s ||(x_i, y_i) - (x_j, y_j)||), patches mean-removed."""
    h, w = p_img.shape

    def feats(img):
        out = []
        for r in range(0, h - n + 1, stride):
            for c in range(0, w - n + 1, stride):
                v = img[r:r + n, c:c + n].astype(np.float64).ravel()
                v = v - v.mean()
                out.append((r // stride, c // stride, v / (np.linalg.norm(v) + eps)))
        return out

    ps, qs = feats(p_img), feats(q_img)
    total = 0.0
    for ri, ci, pv in ps:
        best = math.inf
        for rj, cj, qv in qs:
            d = 1.0 - float(pv @ qv) + w_s * math.hypot(ri - rj, ci - cj)
            best = min(best, d)
        total += best
    return total / len(ps)


@pytest.mark.parametrize("n,stride,w_s,shape", [(3, 1, 0.1, (9, 11)), (4, 2, 0.5, (12, 10)),
                                               (5, 3, 0.0, (14, 14)), (2, 2, 2.0, (8, 8))])
def test_cobi_matches_brute_force(n, stride, w_s, shape):
    rng = np.random.default_rng(n * 10 + stride)
    p = rng.random((2,) + shape).astype(np.float32)
    q = rng.random((2,) + shape).astype(np.float32)
    q[1] = np.roll(p[1], 1, axis=1)  # a shifted copy: the spatial term decides the matches
    got = cobi_loss(torch.from_numpy(p)[:, None], torch.from_numpy(q)[:, None], n=n, stride=stride, w_s=w_s)
    want = np.mean([cobi_brute_force(p[b], q[b], n, stride, w_s) for b in range(2)])
    assert float(got) == pytest.approx(want, abs=1e-5)


def test_cobi_of_identical_images_is_zero_and_flat_patches_are_finite():
    rng = np.random.default_rng(0)
    p = torch.from_numpy(rng.random((1, 1, 16, 16)).astype(np.float32))
    assert float(cobi_loss(p, p, n=4, stride=2, w_s=0.1)) == pytest.approx(0.0, abs=1e-4)  # eps in the norms
    flat = torch.full((1, 1, 16, 16), 0.5)
    assert math.isfinite(float(cobi_loss(flat, p, n=4, stride=2)))


def test_cobi_and_brightness_have_gradients():
    rng = np.random.default_rng(1)
    p = torch.from_numpy(rng.random((2, 1, 24, 24)).astype(np.float32)).requires_grad_()
    q = torch.from_numpy(rng.random((2, 1, 24, 24)).astype(np.float32))
    (cobi_loss(p, q, n=5, stride=2) + brightness_loss(p, q)).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
