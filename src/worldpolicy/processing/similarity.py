"""How alike two videos' frames are: PSNR and SSIM on uint8 RGB frames, what `dataset eval --mode forward_dynamics`
scores a world model's imagined frames by against the recorded ones.

    mse = frame_mse(recorded, imagined)      # [T]: each frame's mean squared error, on the 0..255 scale
    psnr(mse.mean())                         # dB (data range 255); inf for identical frames
    frame_ssim(recorded, imagined)           # [T]: each frame's SSIM, 1 for identical frames

SSIM is Wang et al. 2004's (IEEE TIP 13(4)): an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, the
population (co)variances under the window, the map's mean over the positions where the window fits whole (no padding),
each colour channel scored alone and the three averaged: what scikit-image's `structural_similarity(a, b,
channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)` computes, in torch
ops (scikit-image is not a dependency). A frame with a side under 11 pixels gets the largest odd window that fits.
"""

from __future__ import annotations

import math

import numpy as np

DATA_RANGE = 255.0  # uint8 frames
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 videos [T, H, W, 3] of the same shape, refused otherwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"frames to compare must be two uint8 videos [T, H, W, C] of one shape, got {a.dtype} "
                         f"{a.shape} and {b.dtype} {b.shape}")
    return a, b


def frame_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[T]: the mean squared difference of each frame's pixels (every channel), on the 0..255 scale."""
    a, b = _pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    return (diff**2).reshape(len(a), -1).mean(axis=1)


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error on the 0..255 scale: 10 log10(255^2 / mse); inf for 0
    (identical frames)."""
    return math.inf if mse <= 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def frame_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[T]: each frame's SSIM (Wang et al. 2004, as the module says), the channels averaged; 1 for identical frames."""
    import torch
    import torch.nn.functional as F

    a, b = _pair(a, b)
    size = min(SSIM_WINDOW, *(s - (1 - s % 2) for s in a.shape[1:3]))  # the largest odd window that fits
    g = torch.from_numpy(_gaussian(size, SSIM_SIGMA))
    channels = a.shape[3]
    kernel = torch.outer(g, g).expand(channels, 1, size, size).contiguous()
    x = torch.from_numpy(a).to(torch.float64).permute(0, 3, 1, 2)
    y = torch.from_numpy(b).to(torch.float64).permute(0, 3, 1, 2)

    def mean(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, kernel, groups=channels)  # no padding: the positions where the window fits whole

    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x**2
    var_y = mean(y * y) - mu_y**2
    cov = mean(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3)).numpy()
