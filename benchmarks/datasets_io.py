"""Time to export and import recorded pixel steps, and the bytes each step takes on disk.

    python benchmarks/datasets_io.py --steps 100000 --json docs/datasets_io.json

Records ``--steps`` steps of CartPole-v1 from 64x64 pixels with random actions (rendered frames:
what a pixel replay holds), then writes them as a Minari folder (lossless, and JPEG) and as an
HDF5 episode file, reads each back, and checks the round trip is exact (JPEG: the mean absolute
error instead). Prints JSON: seconds to write and to read, steps/s, bytes per step, and the
uncompressed size of a step for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from json_out import emit

from worldmodels.data.datasets import load_dataset, save_dataset
from worldmodels.run.record import Recording, record_dataset


def size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    t = time.perf_counter()
    episodes = max(1, args.steps // 22)  # a random CartPole episode lasts about 22 steps
    data = record_dataset(Recording(env="CartPole-v1", episodes=episodes, overrides={"obs": "pixels"}))
    while data.steps < args.steps:  # top up to the step count asked for
        more = record_dataset(Recording(env="CartPole-v1", episodes=200, seed=len(data.episodes),
                                        overrides={"obs": "pixels"}))  # fmt: skip
        data.episodes += more.episodes
    record_s = time.perf_counter() - t
    raw = sum(v.nbytes for ep in data.episodes for v in ep.values()) / data.steps
    result = {"steps": data.steps, "episodes": len(data.episodes), "record_s": record_s, "raw_bytes_per_step": raw}
    folder = Path(tempfile.mkdtemp(prefix="wm-datasets-io-"))
    try:
        for name, out, kwargs in (
            ("hdf5", folder / "d.h5", {}),
            ("minari", folder / "minari", {}),
            ("minari_jpeg", folder / "minari-jpeg", {"jpeg": True}),
        ):
            t = time.perf_counter()
            save_dataset(data, out, **kwargs)
            write_s = time.perf_counter() - t
            t = time.perf_counter()
            back = load_dataset(out)
            read_s = time.perf_counter() - t
            images = [(a["image"], b["image"]) for a, b in zip(data.episodes, back.episodes)]
            if kwargs.get("jpeg"):
                exact = None
                error = float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in images]))
            else:
                exact = all(
                    np.array_equal(a[k], b[k]) for a, b in zip(data.episodes, back.episodes) for k in a
                ) and len(back.episodes) == len(data.episodes)
                error = 0.0
            result[name] = {
                "write_s": write_s,
                "read_s": read_s,
                "write_steps_per_s": data.steps / write_s,
                "read_steps_per_s": data.steps / read_s,
                "bytes_per_step": size(out) / data.steps,
                "exact_round_trip": exact,
                "image_mean_abs_error": error,
            }
            print(name, json.dumps(result[name]), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    emit(result, args.json)


if __name__ == "__main__":
    main()
