"""A run's replay read back as whole episodes, without touching it.

The replay (data/replay.py) holds steps per env stream in chunks; a stream's chunks in counter
order are its steps in order, and each chunk records where in its stream it starts. This reads
them read-only (a damaged chunk is skipped here, not renamed as the store does on load), joins
each stream's steps where they are contiguous and cuts them into episodes at ``is_first``. What
is not a whole episode is skipped and counted: an episode whose first steps the replay evicted,
one still running when the replay ends, one a missing or damaged chunk breaks.

``spaces.json`` beside the chunks (written by the trainer) names the env and its spaces, so the
replay folder alone is a dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..specs import COST
from .episodes import Dataset
from .replay import POSITION, STEP_KEYS, _chunk_name

SPACES = "spaces.json"


def write_spaces(directory: Path, *, observation_space, action_space, env_id: str, meta: dict) -> None:
    """Record what the replay's steps are (atomically): the model's observation space, the env's
    action space, the env id and ``meta`` (obs mode, domain parameter names, ...)."""
    from minari.serialization import serialize_space

    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {
            "observation_space": serialize_space(observation_space, to_string=False),
            "action_space": serialize_space(action_space, to_string=False),
            "env_id": env_id,
            "meta": meta,
        },
        indent=1,
    )
    path, tmp = directory / SPACES, directory / (SPACES + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_spaces(directory: Path) -> dict:
    from minari.serialization import deserialize_space

    path = directory / SPACES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            "observation_space": deserialize_space(data["observation_space"]),
            "action_space": deserialize_space(data["action_space"]),
            "env_id": data.get("env_id"),
            "meta": data.get("meta", {}),
        }
    except FileNotFoundError:
        raise DatasetError(
            f"{directory} has no {SPACES} (a replay written before runs recorded their spaces): export it through "
            f"its run folder, `wm data export {directory.parent}`"
        ) from None
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{path} is damaged ({err}); export through the run folder instead") from err


def _streams(directory: Path) -> tuple[dict[int, list[dict[str, np.ndarray]]], list[str]]:
    """Each stream's contiguous runs of steps (a new run after any gap), and what was skipped."""
    pieces: dict[int, list[dict[str, np.ndarray]]] = {}
    ends: dict[int, int] = {}
    skipped: list[str] = []
    chunks = []
    for path in directory.glob("chunk-*.npz"):
        try:
            chunks.append((_chunk_name(path), path))
        except (ValueError, IndexError):
            skipped.append(f"{path.name}: not a replay chunk name")
    for (_, stream), path in sorted(chunks):
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
            meta = arrays.pop(POSITION, None)
            n = len(arrays["reward"])
            if n == 0 or any(len(v) != n for v in arrays.values()):
                raise ValueError("its arrays are empty or disagree in length")
        except Exception as err:  # any damage means the same: this chunk is unusable, the rest is not
            skipped.append(f"{path.name}: unreadable ({err})")
            ends.pop(stream, None)  # whatever follows does not join what came before
            continue
        start = int(np.asarray(meta).reshape(-1)[0]) if meta is not None else ends.get(stream)
        runs = pieces.setdefault(stream, [])
        if runs and start is not None and ends.get(stream) == start:
            runs[-1] = {k: np.concatenate([runs[-1][k], v]) for k, v in arrays.items()}
        else:
            runs.append(arrays)
        ends[stream] = (start if start is not None else 0) + n
    return pieces, skipped


def replay_episodes(directory: str | os.PathLike) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Every whole episode in the replay at ``directory`` (streams in order, each oldest first),
    and a line for each thing skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a replay folder")
    pieces, skipped = _streams(directory)
    episodes: list[dict[str, np.ndarray]] = []
    evicted = running = 0
    for stream in sorted(pieces):
        for run in pieces[stream]:
            starts = np.flatnonzero(run["is_first"])
            if len(starts) == 0 or starts[0] > 0:
                evicted += 1  # steps before the first start belong to an episode begun out of sight
            for a, b in zip(starts, [*starts[1:], len(run["reward"])]):
                if not bool(run["is_last"][b - 1]):
                    running += 1
                    continue
                episodes.append({k: v[a:b] for k, v in run.items()})
    if evicted:
        skipped.append(f"{evicted} episode(s) whose first steps are no longer in the replay (evicted or missing)")
    if running:
        skipped.append(f"{running} episode(s) not finished in the replay (still running, or cut by a missing chunk)")
    return episodes, skipped


def read_replay(directory: str | os.PathLike, *, spaces: dict | None = None) -> Dataset:
    """The replay at ``directory`` as a dataset; ``spaces`` as :func:`read_spaces` gives them
    (default: read from the folder's ``spaces.json``)."""
    directory = Path(directory)
    spaces = spaces or read_spaces(directory)
    episodes, skipped = replay_episodes(directory)
    keys = set(spaces["observation_space"].spaces)
    # The costs the env charged travel with the episodes (a run on a costed env learns them too).
    episodes = [{k: v for k, v in ep.items() if k in keys or k in STEP_KEYS or k == COST} for ep in episodes]
    return Dataset(
        episodes,
        spaces["observation_space"],
        spaces["action_space"],
        env_id=spaces.get("env_id"),
        source=str(directory),
        format="replay",
        skipped=skipped,
        meta=dict(spaces.get("meta", {})),
    )
