"""Image-space changes of what the camera sees: colour, brightness, contrast, a shifted camera,
sensor noise. Each works on any ``(H, W, C)`` uint8 frame, so it applies to every env that
renders, whatever draws it.

The values are the transform's own (``visual.hue=0`` is no change, ``visual.brightness=1`` is
no change): there is no nominal value to multiply.
"""

from __future__ import annotations

import numpy as np

from .domain_spec import VISUAL_PREFIX, DomainSpecError, ParamSpec

# name -> (value that changes nothing, what it does)
VISUAL: dict[str, tuple[float, str]] = {
    "hue": (0.0, "rotate every colour's hue by this many turns (-0.5..0.5; 0.5 is the opposite colour)"),
    "brightness": (1.0, "multiply every pixel by this factor"),
    "contrast": (1.0, "scale the distance of every pixel from the frame's mean grey by this factor"),
    "shift_x": (0.0, "move the picture right by this fraction of its width (the camera moved left)"),
    "shift_y": (0.0, "move the picture down by this fraction of its height"),
    "noise": (0.0, "add Gaussian noise of this standard deviation (in units of the full 0..255 range) each step"),
}

# YIQ: luma plus two chroma axes; a hue rotation is a rotation of the chroma plane.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def check_visual(param: ParamSpec) -> None:
    name = param.name.removeprefix(VISUAL_PREFIX)
    if name not in VISUAL:
        raise DomainSpecError(
            f"no visual parameter {param.name!r}; the visual parameters are "
            f"{', '.join(VISUAL_PREFIX + n for n in VISUAL)}"
        )
    if param.target is not None:
        raise DomainSpecError(f"{param.name} changes the whole frame: write it without [{param.target}]")
    if name in ("brightness", "contrast") and param.low < 0:
        raise DomainSpecError(f"{param.name} is a factor >= 0 (1: unchanged), got {param.low}")
    if name == "noise" and param.low < 0:
        raise DomainSpecError(f"{param.name} is a standard deviation >= 0, got {param.low}")
    if name in ("shift_x", "shift_y") and not (-1 < param.low and param.high < 1):
        raise DomainSpecError(f"{param.name} is a fraction of the frame in (-1, 1), got {param.low}..{param.high}")


def hue_matrix(turns: float) -> np.ndarray:
    """The 3x3 RGB matrix that rotates hue by ``turns`` and keeps luma."""
    angle = 2 * np.pi * turns
    rotate = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    return _YIQ_TO_RGB @ rotate @ _RGB_TO_YIQ


def _shift(frame: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move the picture by (dy, dx) pixels, repeating the edge into the uncovered border."""
    h, w = frame.shape[:2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return frame[rows][:, cols]


def transform(frame: np.ndarray, values: dict[str, float], rng: np.random.Generator | None = None) -> np.ndarray:
    """``frame`` (H, W, C) uint8 as the camera of this domain sees it. ``values`` maps names of
    :data:`VISUAL` (without the ``visual.`` prefix) to values; missing ones change nothing.
    ``rng`` draws the noise (needed when ``noise`` > 0).

    Hue, brightness and contrast are one affine map of the colours (a single matrix product over
    the pixels), then the shift, then the noise."""
    frame = np.asarray(frame)
    channels = frame.shape[-1]
    matrix = np.eye(channels, dtype=np.float64)
    if values.get("hue", 0.0) and channels == 3:
        matrix = hue_matrix(values["hue"])
    matrix = matrix * values.get("brightness", 1.0)
    contrast = values.get("contrast", 1.0)
    out = frame.reshape(-1, channels).astype(np.float32)
    if not np.array_equal(matrix, np.eye(channels)) or contrast != 1.0:
        out = out @ matrix.T.astype(np.float32)
        if contrast != 1.0:
            mean = out.mean()
            out = (out - mean) * np.float32(contrast) + mean
    out = out.reshape(frame.shape)
    dy = int(round(values.get("shift_y", 0.0) * out.shape[0]))
    dx = int(round(values.get("shift_x", 0.0) * out.shape[1]))
    if dy or dx:
        out = _shift(out, dy, dx)
    if values.get("noise", 0.0) > 0:
        if rng is None:
            raise ValueError("visual noise needs a random generator")
        out = out + rng.standard_normal(out.shape, dtype=np.float32) * np.float32(values["noise"] * 255.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
