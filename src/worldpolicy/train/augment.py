"""Image augmentation of training windows (`[augment]`, docs/training.md "Image augmentation"): the Cosmos Policy
recipe's random crop, rotation and colour jitter, one draw per window for all its frames.

torch ops, not torchvision.transforms.v2: the torchvision wheels that pair with torch 2.13 link torch's CUDA libraries
and do not import beside the CPU torch `scripts/setup.sh` installs (`operator torchvision::nms does not exist`). Each
operation follows torchvision's definition of it (`adjust_brightness`, `adjust_contrast`, `adjust_saturation`,
`adjust_hue`, `ColorJitter`'s random order), so the ranges read as they do there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..processing.observations import crop_hw

if TYPE_CHECKING:
    from .config import AugmentConfig

# ITU-R 601-2 luma, as torchvision's `rgb_to_grayscale`
_LUMA = (0.2989, 0.587, 0.114)


def augment_frames(frames: np.ndarray, augment: AugmentConfig, key: Sequence[int]) -> np.ndarray:
    """float [T,H,W,3] in [0,1] → the same frames under one draw of `augment` (all frames alike: the crop's place,
    the angle and the colour factors are drawn once), drawn from `key` alone (a window's episode, start and copy):
    the same key gives the same frames on any machine. In order: a crop of `crop_area` of the frame (its aspect
    ratio kept) at a random place, resized back; a rotation by up to ±`rotation` degrees (corners filled black);
    brightness, contrast, saturation and hue factors applied in a random order."""
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1)[0]))

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    video = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(0, 3, 1, 2)  # T,3,H,W
    height, width = video.shape[-2:]
    crop_h, crop_w = crop_hw(height, width, augment.crop_area)
    top = int(torch.randint(height - crop_h + 1, (), generator=generator))
    left = int(torch.randint(width - crop_w + 1, (), generator=generator))
    if (crop_h, crop_w) != (height, width):
        video = F.interpolate(video[:, :, top:top + crop_h, left:left + crop_w], size=(height, width),
                              mode="bilinear", align_corners=False)
    angle = uniform(-augment.rotation, augment.rotation)
    if angle:
        video = _rotated(video, angle)
    factors = {"brightness": uniform(*augment.brightness), "contrast": uniform(*augment.contrast),
               "saturation": uniform(*augment.saturation), "hue": uniform(-augment.hue, augment.hue)}
    names = list(factors)
    for i in torch.randperm(len(names), generator=generator).tolist():
        video = _COLOUR[names[i]](video, factors[names[i]]).clamp(0.0, 1.0)
    return video.permute(0, 2, 3, 1).numpy()


def _rotated(video: torch.Tensor, degrees: float) -> torch.Tensor:
    """`video` [T,3,H,W] turned `degrees` anticlockwise about its centre (bilinear, outside the frame black), in
    pixels: the normalised grid's axes scaled by the aspect ratio, so a non-square frame is not sheared."""
    height, width = video.shape[-2:]
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a) * height / width, 0.0],
                          [math.sin(a) * width / height, math.cos(a), 0.0]], dtype=video.dtype)
    grid = F.affine_grid(theta.expand(video.shape[0], 2, 3), list(video.shape), align_corners=False)
    return F.grid_sample(video, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(video: torch.Tensor) -> torch.Tensor:
    r, g, b = video.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _blend(video: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return factor * video + (1.0 - factor) * other


def shift_hue(video: torch.Tensor, shift: float) -> torch.Tensor:
    """[...,3,H,W] RGB in [0,1] with its hue turned by `shift` (a share of the colour wheel), as torchvision's
    `adjust_hue`: through HSV and back."""
    r, g, b = video.unbind(-3)
    high, low = video.amax(-3), video.amin(-3)
    delta = high - low
    saturation = torch.where(high > 0, delta / high.clamp_min(1e-12), torch.zeros_like(high))
    d = delta.clamp_min(1e-12)
    hue = torch.where(high == r, (g - b) / d, torch.where(high == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    hue = (hue + shift) % 1.0
    # back to RGB: channel n (R 5, G 3, B 1) is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6 hue) mod 6
    k = (torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1) + 6.0 * hue.unsqueeze(-3)) % 6.0
    return high.unsqueeze(-3) * (1 - saturation.unsqueeze(-3) * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))


# Each colour operation, as torchvision defines it (contrast blends with the mean gray level of each frame)
_COLOUR = {
    "brightness": lambda video, factor: video * factor,
    "contrast": lambda video, factor: _blend(video, _gray(video).mean(dim=(-3, -2, -1), keepdim=True), factor),
    "saturation": lambda video, factor: _blend(video, _gray(video), factor),
    "hue": shift_hue,
}
