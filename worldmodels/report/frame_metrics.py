"""How close predicted frames are to real ones: MSE, PSNR and SSIM (Wang et al. 2004).

SSIM uses the paper's 11x11 Gaussian window (sigma 1.5) and constants K1 = 0.01, K2 = 0.03, per
channel, averaged over the image; frames are floats in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr(mse: np.ndarray, peak: float = 1.0) -> np.ndarray:
    return 10 * np.log10(peak**2 / np.maximum(mse, 1e-10))


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of frame pairs ``(N, H, W, C)`` in [0, 1] -> ``(N,)`` (1 means identical)."""
    x = torch.as_tensor(np.asarray(a), dtype=torch.float64).permute(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(b), dtype=torch.float64).permute(0, 3, 1, 2)
    channels = x.shape[1]
    w = _window().expand(channels, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=channels)  # "valid" windows, as skimage and the paper do

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean((1, 2, 3)).numpy()
