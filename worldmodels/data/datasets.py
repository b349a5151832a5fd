"""Opening and writing datasets whatever their format: what ``--dataset`` and ``wm data`` call.

A dataset is named by a path (or ``minari:NAME``):

- an HDF5 file in this library's layout (data/hdf5.py),
- a Minari dataset's folder, or ``minari:NAME`` for a folder or an id in Minari's local root
  (data/minari_io.py; nothing is downloaded),
- a run's ``replay`` folder (data/replay_episodes.py); a run folder itself goes through the run
  layer (``worldmodels.run.datasets.open_dataset``), which knows its config.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..errors import DatasetError
from ..specs import IMAGE
from .episodes import Dataset
from .hdf5 import SUFFIXES, looks_like_hdf5, read_hdf5, write_hdf5
from .minari_io import META, PREFIX, minari_data_dir, read_minari, write_minari
from .replay_episodes import SPACES, read_replay
from .views import ObservationReader

FORMATS = ("minari", "hdf5")


def load_dataset(path: str | os.PathLike, *, image_size: int | None = None, allow_empty: bool = False) -> Dataset:
    """The dataset at ``path``, its episodes in the library's step layout (images resized to
    ``image_size`` where given). A dataset none of whose episodes can be used is refused (unless
    ``allow_empty``), naming why each was skipped."""
    text = str(path)
    if text.startswith(PREFIX):
        dataset = read_minari(text[len(PREFIX) :], image_size=image_size)
    else:
        dataset = _open(Path(text).expanduser(), image_size)
    return dataset if allow_empty else require_episodes(dataset)


def require_episodes(dataset: Dataset) -> Dataset:
    """``dataset``, or a :class:`DatasetError` if none of its episodes can be used, saying why."""
    if dataset.episodes:
        return dataset
    more = len(dataset.skipped) - 5
    why = "; ".join(dataset.skipped[:5]) + (f"; and {more} more" if more > 0 else "")
    raise DatasetError(f"{dataset.source} holds no usable episode" + (f" ({why})" if why else "") + ".")


def _open(path: Path, image_size: int | None) -> Dataset:
    if path.is_file():
        if looks_like_hdf5(path):
            if path.name == "main_data.hdf5" and minari_data_dir(path.parent) is not None:
                return read_minari(path.parent, image_size=image_size)
            return read_hdf5(path, image_size=image_size)
        raise DatasetError(
            f"{path} is not a dataset: not an HDF5 file (its first bytes are not HDF5's signature). Give an HDF5 "
            "episode file, a Minari dataset's folder, or a run's replay folder."
        )
    if path.is_dir():
        if minari_data_dir(path) is not None:
            return read_minari(path, image_size=image_size)
        for replay in (path, path / "replay"):
            if (replay / SPACES).is_file() or any(replay.glob("chunk-*.npz")):
                return resized(read_replay(replay), image_size)
        raise DatasetError(
            f"{path} is a folder but not a dataset: no Minari data/metadata.json, no replay chunks. Give an HDF5 "
            "episode file, a Minari dataset's folder, or a run folder."
        )
    if "/" not in str(path) and not path.suffix:  # a bare name: perhaps an id in Minari's local root
        return read_minari(str(path), image_size=image_size)
    raise DatasetError(f"no dataset at {path}: the path does not exist")


def resized(dataset: Dataset, image_size: int | None) -> Dataset:
    """``dataset`` with its images at ``image_size`` (the readers of files do this as they read)."""
    image = dataset.observation_space.spaces.get(IMAGE)
    if image_size is None or image is None or image.shape[:2] == (image_size, image_size):
        return dataset
    reader = ObservationReader(dataset.observation_space, image_size)
    episodes = [{**ep, **reader({k: ep[k] for k in dataset.observation_space.spaces})} for ep in dataset.episodes]
    return replace(dataset, episodes=episodes, observation_space=reader.observation_space())


def save_dataset(dataset: Dataset, out: str | os.PathLike, *, fmt: str | None = None, jpeg: bool = False) -> Path:
    """Write ``dataset`` to ``out`` as ``fmt`` (``minari``: a folder; ``hdf5``: one file; default
    from the name: ``.h5``/``.hdf5`` is HDF5, anything else Minari). Never writes over ``out``."""
    out = Path(out).expanduser()
    fmt = fmt or ("hdf5" if out.suffix in SUFFIXES else "minari")
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out.exists():
        raise DatasetError(f"{out} already exists; choose a new --out (a dataset is never written over)")
    if jpeg and fmt != "minari":
        raise DatasetError("--jpeg is Minari's lossy image encoding; the HDF5 layout compresses images losslessly")
    if fmt == "hdf5":
        return write_hdf5(dataset, out)
    return write_minari(dataset, out, jpeg=jpeg)


def dataset_setup(path: str | os.PathLike) -> dict:
    """What a dataset says of the env it was recorded in, without reading its episodes: ``env``
    (the id, where known), ``obs`` (state, pixels or both), ``image_size`` and ``action_repeat``
    (env steps per recorded step). ``wm train --dataset`` takes these as its defaults."""
    import json

    text = str(path)
    found: dict = {}
    target = Path(text[len(PREFIX) :] if text.startswith(PREFIX) else text).expanduser()
    if target.is_file() and looks_like_hdf5(target) and target.name != "main_data.hdf5":
        import h5py

        with h5py.File(target, "r") as f:
            found = {"env": str(f.attrs.get("env_id", "")), **json.loads(f.attrs.get("meta", "{}"))}
    elif (target / SPACES).is_file() or (target / "replay" / SPACES).is_file():
        folder = target if (target / SPACES).is_file() else target / "replay"
        data = json.loads((folder / SPACES).read_text(encoding="utf-8"))
        found = {"env": data.get("env_id") or "", **data.get("meta", {})}
    else:
        data_dir = minari_data_dir(target.parent if target.name == "main_data.hdf5" else target)
        if data_dir is None and text.startswith(PREFIX):
            from .minari_io import resolve_minari

            data_dir = resolve_minari(text[len(PREFIX) :])
        if data_dir is not None:
            meta = json.loads((data_dir / "metadata.json").read_text(encoding="utf-8"))
            ours = json.loads(meta.get(META, "{}"))
            spec = meta.get("env_spec")
            env = ours.get("env_id") or (json.loads(spec).get("id") if isinstance(spec, str) else "")
            found = {"env": env or "", **ours}
    out = {}
    if found.get("env"):
        out["env"] = found["env"]
    if found.get("obs_mode"):
        out["obs"] = found["obs_mode"]
    if found.get("image_size"):
        out["image_size"] = int(found["image_size"])
    if found.get("action_repeat"):
        out["action_repeat"] = int(found["action_repeat"])
    return out
