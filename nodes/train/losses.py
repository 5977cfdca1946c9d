"""Training losses of the fusion network: L1, CoBi and brightness consistency (SPEC section 5).

- L1 on luminance: mean |Y_fusion - Y_target|, optionally weighted per pixel. Training weights
  it by the trust the pipeline gives the output, floor + (1 - floor) M_blend (the blend weight
  of ``hzsr.blend`` computed on the training triplet): where the masks will put I_src back, the
  network need not hedge, and where they trust T, it must get T's detail right.
- CoBi, the contextual bilateral loss of Zoom to Learn (Zhang et al. 2019, eq. 2):
  CoBi(P, Q) = 1/N sum_i min_j (D(p_i, q_j) + w_s * D'(p_i, q_j)),
  D'(p_i, q_j) = ||(x_i, y_i) - (x_j, y_j)||_2. The features p_i, q_j are the n x n patches of
  Y (the paper's CoBi_RGB on luminance), taken on a grid with ``stride`` (default 8: the
  n = 8 patches tile the image, N = M = (128/8)^2 per training patch); D is the cosine
  distance 1 - <p, q> / (|p| |q|) of the mean-removed patches (so it compares structure, not
  brightness, which L1 and the brightness term already hold), and coordinates are in units of
  the patch grid step. The paper's CoBi_VGG term is left out: no pretrained VGG weights are
  available offline.
- Brightness consistency: mean |L(Y_fusion) - L(Y_src)| with L an 8 x 8 box low-pass: the fused
  image must keep W's low frequencies (exposure, shading), adding only detail.
- No harm: mean over 8 x 8 windows of
  max(0, E(Y_out) - E(Y_src)), E the window's mean |. - Y_target| and Y_out what the pipeline
  outputs (M_blend Y_fusion + (1 - M_blend) Y_src). It charges only where the output ends up
  worse than the upsampled W, which is HZSR's promise ("never worse than W"): L1 weighs a
  wrong transfer of T and a missed right one alike, this term makes the wrong one dearer, where
  T shows another surface that M_occ did not flag.
- Distillation (only with a teacher network): L1 between Y_fusion and the teacher's Y_fusion
  on the same input, weighted per pixel like the L1 term, so a smaller network learns to give
  what a larger one gives where the pipeline will use it (Hinton et al. 2015's knowledge
  distillation, on the regression output).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def l1_loss(y_fusion: torch.Tensor, y_target: torch.Tensor,
            weight: torch.Tensor | None = None) -> torch.Tensor:
    error = (y_fusion - y_target).abs()
    if weight is None:
        return error.mean()
    return (weight * error).sum() / weight.sum().clamp_min(1e-8)


def patch_features(y: torch.Tensor, n: int, stride: int) -> torch.Tensor:
    """(B, 1, H, W) -> (B, L, n*n) mean-removed n x n patches on a grid of step ``stride``."""
    p = F.unfold(y, kernel_size=n, stride=stride).transpose(1, 2)
    return p - p.mean(dim=2, keepdim=True)


def patch_grid(h: int, w: int, n: int, stride: int, device=None) -> torch.Tensor:
    """(L, 2) coordinates (row, col) of the patches of :func:`patch_features`, in grid steps."""
    rows = (h - n) // stride + 1
    cols = (w - n) // stride + 1
    r, c = torch.meshgrid(torch.arange(rows, device=device, dtype=torch.float32),
                          torch.arange(cols, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([r.reshape(-1), c.reshape(-1)], dim=1)


def cobi_loss(y_fusion: torch.Tensor, y_target: torch.Tensor, n: int = 8, stride: int = 8,
              w_s: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """CoBi(P = patches of ``y_fusion``, Q = patches of ``y_target``), averaged over the batch."""
    p = patch_features(y_fusion, n, stride)
    q = patch_features(y_target, n, stride)
    p = p / (p.norm(dim=2, keepdim=True) + eps)
    q = q / (q.norm(dim=2, keepdim=True) + eps)
    d_feat = 1.0 - torch.bmm(p, q.transpose(1, 2))                    # (B, N, M) cosine distance
    xy = patch_grid(y_fusion.shape[-2], y_fusion.shape[-1], n, stride, y_fusion.device)
    d_space = torch.cdist(xy, xy)                                      # (N, M)
    return (d_feat + w_s * d_space).min(dim=2).values.mean()


def brightness_loss(y_fusion: torch.Tensor, y_src: torch.Tensor, size: int = 8) -> torch.Tensor:
    """mean |L(Y_fusion) - L(Y_src)| with L the mean over ``size`` x ``size`` windows at stride
    size/2 (a box low-pass: cheap, and at 8 px it keeps exposure and shading, not detail)."""
    def low(y):
        return F.avg_pool2d(y, size, stride=max(1, size // 2))

    return (low(y_fusion) - low(y_src)).abs().mean()


def harm_loss(y_out: torch.Tensor, y_src: torch.Tensor, y_target: torch.Tensor,
              size: int = 8) -> torch.Tensor:
    """mean over ``size`` x ``size`` windows (stride size/2) of
    max(0, mean |Y_out - Y_target| - mean |Y_src - Y_target|): how much worse than Y_src."""
    def window_error(y):
        return F.avg_pool2d((y - y_target).abs(), size, stride=max(1, size // 2))

    return F.relu(window_error(y_out) - window_error(y_src)).mean()


def blended_output(y_fusion: torch.Tensor, y_src: torch.Tensor,
                   m_blend: torch.Tensor | None) -> torch.Tensor:
    """What the pipeline outputs: M_blend Y_fusion + (1 - M_blend) Y_src (Y_fusion without M_blend)."""
    return y_fusion if m_blend is None else m_blend * y_fusion + (1.0 - m_blend) * y_src


def total_loss(y_fusion: torch.Tensor, y_target: torch.Tensor, y_src: torch.Tensor,
               weights: dict[str, float], pixel_weight: torch.Tensor | None = None,
               m_blend: torch.Tensor | None = None, y_teacher: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the losses and their values (for the log); ``pixel_weight`` weights the
    L1 terms per pixel, ``m_blend`` turns Y_fusion into the pipeline's output for the no-harm
    term, ``y_teacher`` (a teacher's Y_fusion) enables the distillation term."""
    def wanted(name):
        return weights.get(name, 0) > 0

    parts = {"l1": l1_loss(y_fusion, y_target, pixel_weight),
             "cobi": cobi_loss(y_fusion, y_target) if wanted("cobi") else None,
             "bright": brightness_loss(y_fusion, y_src) if wanted("bright") else None,
             "harm": harm_loss(blended_output(y_fusion, y_src, m_blend), y_src, y_target)
             if wanted("harm") else None,
             "distill": l1_loss(y_fusion, y_teacher, pixel_weight)
             if wanted("distill") and y_teacher is not None else None}
    total = sum(weights[k] * v for k, v in parts.items() if v is not None)
    return total, {k: float(v.detach()) for k, v in parts.items() if v is not None}
