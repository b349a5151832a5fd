"""Minari datasets in and out, on local paths only: nothing here downloads.

A Minari dataset is a folder ``NAME/`` holding ``data/metadata.json`` (its spaces, env spec and
format) and the episodes (``data/main_data.hdf5`` in Minari's default HDF5 storage). Written by
``minari.create_dataset_from_buffers``, read by ``minari.MinariDataset``, so any Minari user can
read what this library writes and the other way round. Minari writes into its datasets root
(``MINARI_DATASETS_PATH``); :func:`write_minari` points that root at a temporary folder beside
the target for the call and moves the finished dataset into place, so a killed export leaves
nothing under the real name. Images are stored as they are (lossless) unless ``jpeg=True``
(Minari's JPEG encoding: several times smaller, lossy).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import gymnasium as gym

from ..errors import DatasetError, os_error_text
from .episodes import BadEpisode, Dataset, from_transitions, to_transitions
from .views import ObservationReader

PREFIX = "minari:"
META = "worldmodels_meta"  # our key in metadata.json


@contextlib.contextmanager
def _datasets_root(root: Path):
    """Minari's datasets root set to ``root`` for the block, as it was afterwards."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def dataset_id_for(path: Path) -> str:
    """A Minari dataset id from a folder name: ``data/pend-random`` -> ``pend-random-v0``."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", path.name).strip("-") or "dataset"
    name = re.sub(r"-v\d+$", "", name)
    return f"{name}-v0"


def write_minari(dataset: Dataset, path: str | os.PathLike, *, jpeg: bool = False) -> Path:
    """Write ``dataset`` as a Minari dataset folder at ``path`` (which must not exist)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    path = Path(path).absolute()  # Minari's root must not be relative: it joins it with its own paths
    if path.exists():
        raise DatasetError(f"{path} already exists; choose a new --out (a dataset is never written over)")
    buffers = []
    for i, steps in enumerate(dataset.episodes):
        moves = to_transitions(steps, dataset.action_space)
        buffers.append(EpisodeBuffer(id=i, infos={}, **moves))
    env = _registered_spec(dataset.env_id)
    dataset_id = dataset_id_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".minari-") as root:
            with _datasets_root(Path(root)), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Minari's advice to name an author and an email
                written = minari.create_dataset_from_buffers(
                    dataset_id,
                    buffers,
                    env=env,
                    observation_space=dataset.observation_space,
                    action_space=dataset.action_space,
                    algorithm_name=str(dataset.meta.get("policy", "worldmodels")),
                    description=_description(dataset),
                    jpeg_encoding=jpeg,
                    data_format="hdf5",
                )
                # What the library knows of the recording beyond Minari's fields, read back by read_minari.
                written.storage.update_metadata({META: json.dumps({**dataset.meta, "env_id": dataset.env_id})})
            os.replace(Path(root) / dataset_id, path)
    except OSError as err:
        raise DatasetError(f"cannot write {path}: {os_error_text(err)}") from err
    return path


def _registered_spec(env_id: str | None):
    """The env's gymnasium spec where it has one (Minari then records it, for ``recover_environment``)."""
    if env_id and env_id in gym.registry:
        return gym.spec(env_id)
    return None


def _description(dataset: Dataset) -> str:
    what = f"{len(dataset.episodes)} episodes, {dataset.steps} steps"
    policy = dataset.meta.get("policy")
    env = f" of {dataset.env_id}" if dataset.env_id else ""
    return f"Recorded by worldmodels: {what}{env}" + (f", policy {policy}" if policy else "") + "."


def minari_data_dir(path: Path) -> Path | None:
    """The ``data`` folder of a Minari dataset at ``path`` (the dataset's folder or its data folder)."""
    for candidate in (path / "data", path):
        if (candidate / "metadata.json").is_file():
            return candidate
    return None


def resolve_minari(name: str) -> Path:
    """``minari:NAME``: a dataset folder on disk, else the id ``NAME`` in Minari's local root."""
    path = Path(name).expanduser()
    data = minari_data_dir(path)
    if data is not None:
        return data
    from minari.storage.datasets_root_dir import get_dataset_path

    local = minari_data_dir(get_dataset_path(name))
    if local is not None:
        return local
    root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
    raise DatasetError(
        f"no Minari dataset {name!r} on disk: neither a folder {path} holding data/metadata.json nor the id {name!r} "
        f"in Minari's local datasets ({root}). Nothing is downloaded: fetch it first (`minari download {name}`, "
        "which needs the internet) or give the dataset's folder."
    )


def read_minari(path: str | os.PathLike, *, image_size: int | None = None) -> Dataset:
    """A Minari dataset's episodes in the library's step layout. Episodes that cannot be read or
    used are skipped and named in ``skipped``; the rest load."""
    from minari import MinariDataset

    data_dir = resolve_minari(str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mds = MinariDataset(data_dir)
    except Exception as err:  # Minari raises whatever its storage hits on a damaged metadata or data file
        raise DatasetError(f"cannot read the Minari dataset at {data_dir}: {err}") from err
    reader = ObservationReader(mds.observation_space, image_size)
    episodes, skipped = [], []
    for index in mds.episode_indices:
        try:
            ep = next(iter(mds.iterate_episodes([int(index)])))
            steps = from_transitions(
                reader(ep.observations), ep.actions, ep.rewards, ep.terminations, ep.truncations, mds.action_space
            )
        except BadEpisode as err:
            skipped.append(f"episode_{index}: {err}")
            continue
        except Exception as err:  # a damaged episode in Minari's storage; the others still load
            skipped.append(f"episode_{index}: unreadable ({type(err).__name__}: {err})")
            continue
        episodes.append(steps)
    spec = mds.spec.env_spec
    meta = json.loads(mds.storage.metadata.get(META, "{}"))
    env_id = meta.pop("env_id", None) or (spec.id if spec is not None else None)
    return Dataset(
        episodes,
        reader.observation_space(),
        mds.action_space,
        env_id=env_id,
        source=str(data_dir.parent if data_dir.name == "data" else data_dir),
        format="minari",
        skipped=skipped,
        meta={**meta, "minari_id": mds.id},
    )
