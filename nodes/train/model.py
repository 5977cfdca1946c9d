"""The fusion network: a 5-level UNet, residual on Y_src (HZSR section 3.2).

Y_fusion = Y_src + net(Y_src, Ỹ_ref, M_occ). To run 12 MP on two CPU cores, the network works on
a space-to-depth (pixel_unshuffle by 4) stem: the five levels run at 1/4, 1/8, 1/16, 1/32 and
1/64 of the input resolution, and a depth-to-space (pixel_shuffle by 4) head returns the full
resolution residual. Skips are additive (no concatenation) to keep the decoder cheap. Leaky ReLU,
no normalisation layers, so the exported graph is plain Conv/ConvTranspose/LeakyRelu/Add.

A 1x1 convolution from the stem's input straight to the residual gives the network a linear
path (a global blend of Ỹ_ref into Y_src is learnt in the first steps). A detail-transfer path
adds T's detail directly: Ỹ_ref is split by fixed Gaussians (sigma 1, 2, 4 px) into three
band-pass layers d_k, and the UNet predicts a per-pixel gain g_k for each, so
Y_fusion = Y_src + r + sum_k g_k d_k. The classical detail transfer is one setting of these
gains; the network learns where and how much of each band of T to trust. The last
convolutions are initialised to zero, so an untrained network is the identity on Y_src:
training starts from "keep the upsampled W" and learns only where T's detail helps.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STEM = 4          # space-to-depth factor
LEVELS = 5        # resolution levels 1/4 ... 1/64
MULTIPLE = STEM * 2 ** (LEVELS - 1)   # input H and W must be multiples of this (64)
WIDTHS = (24, 32, 48, 64, 96)
DETAIL_SIGMAS = (1.0, 2.0, 4.0)   # px; bands Ỹ_ref - G1, G1 - G2, G2 - G4


NEGATIVE_SLOPE = 0.1   # leaky: with plain ReLU the last decoder level died (all zeros) in training


def _act() -> nn.Module:
    return nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), _act())


def gaussian_taps(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius round(3 sigma) (OpenCV's kernel), float32."""
    size = 2 * int(3 * sigma + 0.5) + 1
    return torch.from_numpy(cv2.getGaussianKernel(size, sigma).ravel().astype(np.float32))


class DetailBands(nn.Module):
    """(N, 1, H, W) -> (N, len(sigmas), H, W) band-pass layers of a Gaussian stack (edge-padded).

    The blurs run as one horizontal 1 -> k convolution and one vertical grouped one, the
    shorter kernels zero-padded to the longest: two Conv ops instead of 2k, the same values
    (zero taps past a kernel's own radius see only the replicated edge it would see anyway).
    """

    def __init__(self, sigmas: tuple[float, ...] = DETAIL_SIGMAS):
        super().__init__()
        self.sigmas = tuple(sigmas)
        taps = [gaussian_taps(s) for s in self.sigmas]
        self.radius = max(t.numel() for t in taps) // 2
        bank = torch.zeros(len(taps), 2 * self.radius + 1)
        for i, t in enumerate(taps):
            r = t.numel() // 2
            bank[i, self.radius - r:self.radius + r + 1] = t
        self.register_buffer("bank", bank, persistent=False)
        self.nonzero_taps = sum(t.numel() for t in taps)

    def flops_per_pixel(self) -> int:
        """2 x multiply-adds per pixel of the separable blurs, zero taps left out (for :func:`gflops`)."""
        return 2 * 2 * self.nonzero_taps

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        r, k = self.radius, len(self.sigmas)
        rows = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), self.bank.view(k, 1, 1, -1))
        blurred = F.conv2d(F.pad(rows, (0, 0, r, r), mode="replicate"), self.bank.view(k, 1, -1, 1),
                           groups=k)
        levels = torch.cat([y, blurred], dim=1)
        return levels[:, :-1] - levels[:, 1:]


class FusionUNet(nn.Module):
    """(N, 3, H, W) = [Y_src, Ỹ_ref, M_occ] -> (N, 1, H, W) Y_fusion; H, W multiples of 64."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS,
                 detail_sigmas: tuple[float, ...] = DETAIL_SIGMAS):
        super().__init__()
        assert len(widths) == LEVELS
        self.widths = tuple(widths)
        w = widths
        self.stem = _conv(3 * STEM * STEM, w[0])
        self.enc = nn.ModuleList([_conv(w[0], w[0])] + [_conv(w[i], w[i]) for i in range(1, LEVELS)])
        # stride-2 2x2 convolutions: downsampling without overlapping footprints
        self.down = nn.ModuleList([nn.Sequential(nn.Conv2d(w[i], w[i + 1], 2, stride=2), _act())
                                   for i in range(LEVELS - 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2)
                                 for i in range(LEVELS - 1)])
        self.dec = nn.ModuleList([_conv(w[i], w[i]) for i in range(LEVELS - 1)])
        self.head = nn.Conv2d(w[0], STEM * STEM, 3, padding=1)
        # a linear path from the stem's input to the residual: a global blend such as
        # Y_src + a (Ỹ_ref - Y_src) is learnt at once; the UNet learns the gating around it
        self.linear = nn.Conv2d(3 * STEM * STEM, STEM * STEM, 1)
        self.bands = DetailBands(detail_sigmas)
        # per-pixel gains of T's detail bands, predicted from the last decoder level
        self.gains = nn.Conv2d(w[0], len(detail_sigmas) * STEM * STEM, 1)
        for conv in (self.head, self.linear, self.gains):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y_src = x[:, :1]
        blocks = F.pixel_unshuffle(x, STEM)
        h = self.enc[0](self.stem(blocks))
        skips = [h]
        for i in range(LEVELS - 1):
            h = self.enc[i + 1](self.down[i](h))
            skips.append(h)
        for i in reversed(range(LEVELS - 1)):
            h = self.dec[i](F.leaky_relu(self.up[i](h) + skips[i], NEGATIVE_SLOPE))
        detail = (F.pixel_shuffle(self.gains(h), STEM) * self.bands(x[:, 1:2])).sum(dim=1, keepdim=True)
        return y_src + F.pixel_shuffle(self.head(h) + self.linear(blocks), STEM) + detail


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops(model: FusionUNet, height: int, width: int) -> float:
    """Multiply-adds x 2 of all convolutions (the fixed detail-band blurs included) for one
    (height, width) input, in GFLOPs."""
    total = 0
    hooks = []

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += 2 * k * out.numel()
        elif isinstance(mod, nn.ConvTranspose2d):
            total += 2 * mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels * inp[0].numel()

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(hook))
    h = -(-height // MULTIPLE) * MULTIPLE
    w = -(-width // MULTIPLE) * MULTIPLE
    with torch.no_grad():
        model(torch.zeros(1, 3, h, w))
    for hk in hooks:
        hk.remove()
    total += model.bands.flops_per_pixel() * h * w
    return total / 1e9
