"""A dataset's recorded observations seen the way the model sees them.

Datasets this library writes already hold the model's view (``image``/``vector``/``domain``).
Others (a Minari dataset of a MuJoCo task, a robot's log) hold the env's own observations; they
go through :class:`~worldmodels.envs.adapter.StateView`, the same split the env adapter makes
of a live observation (an image-like part becomes ``image``, the rest a flat ``vector``), so a
recorded step and a live one reach the model alike.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..envs.adapter import StateView, resize
from ..envs.spaces import is_image_space
from ..errors import DatasetError
from ..specs import DOMAIN, IMAGE, VECTOR
from .episodes import OBS_KEYS


def is_model_view(space: spaces.Space) -> bool:
    """A Dict of the model's keys only (what this library exports)."""
    if not isinstance(space, spaces.Dict) or not space.spaces or not set(space.spaces) <= set(OBS_KEYS):
        return False
    image = space.spaces.get(IMAGE)
    return (image is None or is_image_space(image)) and all(
        isinstance(space.spaces[k], spaces.Box) and len(space.spaces[k].shape) == 1
        for k in (VECTOR, DOMAIN)
        if k in space.spaces
    )


class ObservationReader:
    """Turns one episode's recorded observations (``T + 1`` rows, in ``space``) into the model's
    view at ``image_size`` (None: as stored; a non-square image then needs a size)."""

    def __init__(self, space: spaces.Space, image_size: int | None = None):
        self.space, self.native = space, is_model_view(space)
        self.view = None if self.native else StateView(space)
        image = self._image_shape()
        if image is not None and image_size is None and image[0] != image[1]:
            raise DatasetError(
                f"the dataset's images are {image[0]}x{image[1]}; the model takes square ones: give an image size "
                "(--image-size, or image_size= in Python) to resize them to"
            )
        self.image_size = image_size if image_size is not None else (image[0] if image is not None else None)

    def _image_shape(self) -> tuple[int, ...] | None:
        if self.native:
            image = self.space.spaces.get(IMAGE)
            return None if image is None else tuple(image.shape)
        if self.view.channels is None:
            return None
        part = self.space if self.view.image_key == "" else self.space[self.view.image_key]
        return tuple(part.shape)

    def observation_space(self) -> spaces.Dict:
        parts: dict[str, spaces.Space] = {}
        image = self._image_shape()
        if image is not None:
            parts[IMAGE] = spaces.Box(0, 255, (self.image_size, self.image_size, image[-1]), np.uint8)
        if self.native:
            parts.update({k: s for k, s in self.space.spaces.items() if k != IMAGE})
            parts = {k: parts[k] for k in OBS_KEYS if k in parts}
        elif self.view.vector is not None:
            parts[VECTOR] = spaces.Box(-np.inf, np.inf, (self.view.vector,), np.float32)
        return spaces.Dict(parts)

    def __call__(self, observations) -> dict[str, np.ndarray]:
        if self.native:
            out = {k: np.asarray(observations[k]) for k in OBS_KEYS if k in observations}
            if IMAGE in out:
                out[IMAGE] = self._resized(out[IMAGE])
            for key in (VECTOR, DOMAIN):
                if key in out:
                    out[key] = out[key].astype(np.float32, copy=False)
            return out
        if isinstance(self.space, spaces.Box) and not is_image_space(self.space):  # the common case, vectorised
            values = np.asarray(observations)
            return {VECTOR: values.reshape(len(values), -1).astype(np.float32)}
        if is_image_space(self.space):
            return {IMAGE: self._resized(np.asarray(observations))}
        rows = [self.view(_row(observations, i), self.image_size) for i in range(_length(observations))]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def _resized(self, frames: np.ndarray) -> np.ndarray:
        frames = frames.astype(np.uint8, copy=False)
        if frames.shape[1:3] == (self.image_size, self.image_size):
            return frames
        return np.stack([resize(f, self.image_size) for f in frames])


def _length(tree) -> int:
    if isinstance(tree, dict):
        return _length(next(iter(tree.values())))
    if isinstance(tree, tuple | list):
        return _length(tree[0])
    return len(tree)


def _row(tree, i: int):
    """Row ``i`` of a nested dict/tuple of arrays, as one observation of that structure."""
    if isinstance(tree, dict):
        return {k: _row(v, i) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return tuple(_row(v, i) for v in tree)
    return tree[i]
