"""The no-harm term of the fusion training against a plain double loop over windows; where it
charges and where its gradient flows."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the optional 'train' extra) is not installed")

from nodegraph.nodes.train.losses import blended_output, harm_loss, total_loss  # noqa: E402


def harm_brute_force(out: np.ndarray, src: np.ndarray, target: np.ndarray, size: int) -> float:
    """mean over size x size windows at stride size // 2 of max(0, E(out) - E(src)),
    E = mean |. - target| over the window (windows that fit, like avg_pool2d)."""
    stride = max(1, size // 2)
    h, w = target.shape
    excess = []
    for r in range(0, h - size + 1, stride):
        for c in range(0, w - size + 1, stride):
            win = (slice(r, r + size), slice(c, c + size))
            e_out = np.abs(out[win] - target[win]).mean()
            e_src = np.abs(src[win] - target[win]).mean()
            excess.append(max(0.0, e_out - e_src))
    return float(np.mean(excess))


@pytest.mark.parametrize("size,shape", [(8, (32, 40)), (4, (13, 17)), (2, (6, 9)), (6, (20, 20))])
def test_harm_matches_brute_force(size, shape):
    rng = np.random.default_rng(size)
    target = rng.random((2, *shape))
    src = target + rng.normal(0, 0.05, target.shape)
    out = target + rng.normal(0, 0.05, target.shape)   # as good as src on average: some windows worse
    got = harm_loss(*(torch.from_numpy(a)[:, None] for a in (out, src, target)), size=size)
    want = np.mean([harm_brute_force(out[b], src[b], target[b], size) for b in range(2)])
    assert want > 1e-3
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_harm_is_zero_when_the_output_is_never_worse_than_src():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.random((1, 1, 24, 24)))
    src = target + 0.1
    assert float(harm_loss(src, src, target)) == 0.0
    assert float(harm_loss(target, src, target)) == 0.0
    assert float(harm_loss(target + 0.05, src, target)) == 0.0
    assert float(harm_loss(target + 0.2, src, target)) == pytest.approx(0.1)


def test_harm_gradient_reaches_the_fusion_only_where_m_blend_lets_it_through():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.random((1, 1, 16, 16)))
    src = target + 0.01
    fused = (target + 0.3).requires_grad_(True)       # worse than src everywhere
    m_blend = torch.zeros_like(target)
    m_blend[..., :, 8:] = 1.0
    _, parts = total_loss(fused, target, src, {"l1": 0.0, "harm": 1.0}, m_blend=m_blend)
    harm = harm_loss(blended_output(fused, src, m_blend), src, target)
    harm.backward()
    assert parts["harm"] == pytest.approx(float(harm.detach()))
    assert float(fused.grad[..., :, :8].abs().max()) == 0.0     # M_blend = 0: src is output
    assert float(fused.grad[..., :, 8:].min()) > 0.0           # pushed back towards the target
