"""Writing frames as MP4 (imageio's bundled ffmpeg) and GIF."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw


def _even(frame: np.ndarray) -> np.ndarray:
    # H.264 needs even sides.
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def write_video(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    frames = [_even(np.asarray(f, np.uint8)) for f in frames]
    imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
    return path


def write_gif(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    imageio.mimsave(path, [np.asarray(f, np.uint8) for f in frames], duration=1000 / fps, loop=0)
    return path


def upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so 64x64 frames are visible."""
    return frame.repeat(factor, 0).repeat(factor, 1)


def label(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` written in its top-left corner."""
    img = Image.fromarray(np.ascontiguousarray(frame))
    ImageDraw.Draw(img).text((6, 4), text, fill=(0, 0, 0) if frame.mean() > 127 else (255, 255, 255))
    return np.asarray(img)
