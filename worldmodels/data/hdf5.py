"""Episodes in one HDF5 file: the layout of a Minari dataset's ``main_data.hdf5``, compressed,
with its spaces inside, so the one file is the whole dataset.

Layout (docs/DATASETS.md)::

    /                       attrs: format = "worldmodels.episodes", format_version = 1,
                                   observation_space, action_space (Minari's JSON of a gymnasium space),
                                   env_id, meta (JSON: policy, seed, obs_mode, domain_names, ...)
    /episode_{i}/           attrs: id, total_steps (T)
        observations/{key}  T + 1 rows (a Dict space; a plain dataset for any other space)
        actions             T rows, in the env's own units (ints for Discrete)
        rewards             T float32
        terminations        T bool
        truncations         T bool

Every array of 8 KiB or more is chunked and gzip-compressed (images with one chunk per 32 frames,
so rendered frames, mostly flat colour, shrink several times over); smaller ones are stored as
they are, where a chunk index would cost more than it saves. A file is written to a temp name,
fsynced and renamed: a killed export leaves no half file under the real name.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError, os_error_text
from .episodes import BadEpisode, Dataset, from_transitions, to_transitions
from .views import ObservationReader

FORMAT, FORMAT_VERSION = "worldmodels.episodes", 1
SUFFIXES = (".h5", ".hdf5")
_EPISODE = re.compile(r"episode_(\d+)$")


def _space_json(space) -> str:
    from minari.serialization import serialize_space

    return serialize_space(space)


def _space(text: str):
    from minari.serialization import deserialize_space

    return deserialize_space(json.loads(text))


def _options(value: np.ndarray) -> dict:
    if value.ndim == 0 or len(value) == 0 or value.nbytes < 8192:  # small: chunk and filter overheads outweigh it
        return {}
    rows = 32 if value.dtype == np.uint8 and value.ndim >= 3 else 4096
    return {"chunks": (min(len(value), rows), *value.shape[1:]), "compression": "gzip", "compression_opts": 4}


def write_hdf5(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to ``path`` (``.h5``/``.hdf5``) in the layout above; returns the path."""
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["format"], f.attrs["format_version"] = FORMAT, FORMAT_VERSION
            f.attrs["observation_space"] = _space_json(dataset.observation_space)
            f.attrs["action_space"] = _space_json(dataset.action_space)
            f.attrs["env_id"] = dataset.env_id or ""
            f.attrs["meta"] = json.dumps(dataset.meta)
            for i, steps in enumerate(dataset.episodes):
                group = f.create_group(f"episode_{i}")
                moves = to_transitions(steps, dataset.action_space)
                group.attrs["id"], group.attrs["total_steps"] = i, len(moves["rewards"])
                for key, value in moves.pop("observations").items():
                    group.create_dataset(f"observations/{key}", data=value, **_options(value))
                for key, value in moves.items():
                    group.create_dataset(key, data=value, **_options(value))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise DatasetError(f"cannot write {path}: {os_error_text(err)}") from err
        raise
    return path


def looks_like_hdf5(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def read_hdf5(path: str | os.PathLike, *, image_size: int | None = None) -> Dataset:
    """A dataset in the layout above. Episodes that cannot be used (arrays of disagreeing lengths,
    a step after the end, non-finite values, unreadable bytes) are skipped and named in
    ``skipped``; a file that is not one of these is refused saying what it is."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise DatasetError(
            f"cannot read {path} as HDF5: {err}. Is it a dataset file, whole and not cut short?"
        ) from err
    with f:
        if f.attrs.get("format") != FORMAT:
            minari = "a Minari dataset's data file (point at the dataset's folder instead)" if "episode_0" in f else ""
            raise DatasetError(
                f"{path} is not a worldmodels episode file{' but ' + minari if minari else ''}: it has no "
                f"format={FORMAT!r} attribute. The layout is in docs/DATASETS.md; `wm data export` and "
                "`wm data collect --format hdf5` write it."
            )
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise DatasetError(
                f"{path} is episode format {version}; this worldmodels reads up to {FORMAT_VERSION}: upgrade it"
            )
        obs_space, action_space = _space(f.attrs["observation_space"]), _space(f.attrs["action_space"])
        reader = ObservationReader(obs_space, image_size)
        names = sorted((n for n in f if _EPISODE.match(n)), key=lambda n: int(_EPISODE.match(n).group(1)))
        episodes, skipped = [], []
        for name in names:
            try:
                group = f[name]
                raw = group["observations"]
                obs = {k: raw[k][()] for k in raw} if isinstance(raw, h5py.Group) else raw[()]
                steps = from_transitions(
                    reader(obs),
                    group["actions"][()],
                    group["rewards"][()],
                    group["terminations"][()],
                    group["truncations"][()],
                    action_space,
                )
            except BadEpisode as err:
                skipped.append(f"{name}: {err}")
                continue
            except (KeyError, OSError, ValueError, TypeError, IndexError) as err:  # damaged or missing arrays
                skipped.append(f"{name}: unreadable ({err})")
                continue
            episodes.append(steps)
        return Dataset(
            episodes,
            reader.observation_space(),
            action_space,
            env_id=str(f.attrs.get("env_id", "")) or None,
            source=str(path),
            format="hdf5",
            skipped=skipped,
            meta=json.loads(f.attrs.get("meta", "{}")),
        )
