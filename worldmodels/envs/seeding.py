"""Every training episode gets a seed of its own, derived from the run's seed, the env's stream
and the episode's index in that stream.

Why: an env reset once with the run's seed and then autoreset draws each episode from where the
last one left its generator, so the only way to continue it after a crash is to have saved it.
With a seed per episode, a resumed run starts each stream at the next episode index its replay
does not hold yet: it never collects an episode it already has, and a run checkpointed where
every env starts an episode resumes with exactly the envs it stopped with.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import gymnasium as gym
import numpy as np

# The reset option that switches a stream to per-episode seeds: {"seed": run seed, "first": [index per stream]}.
OPTION = "episode_seeds"


class Purpose(IntEnum):
    """What an episode is played for. Each purpose draws its reset seeds from its own quarter of
    ``[0, 2**32)`` (the top two bits), so the sets are disjoint by construction: no evaluation
    starts from a state a training episode started from, and ``wm eval`` replays none of the
    starts the run's own evaluations saw."""

    TRAIN = 0  # training episodes (the collector)
    EVAL = 1  # evaluations during training
    REPORT = 2  # wm eval
    HELD_OUT = 3  # wm dream and wm plan


_LOW_BITS = 2**30 - 1


def protocol_seed(purpose: Purpose, *key: int) -> int:
    """The reset seed for ``key`` (e.g. run seed, stream, episode) under ``purpose``: 30 bits of
    SeedSequence hash below the purpose's two bits. Fits the 32-bit seeds every suite takes."""
    if any(int(k) < 0 for k in key):
        raise ValueError(f"seeds are non-negative integers; got {key}")
    state = int(np.random.SeedSequence([int(purpose), *map(int, key)]).generate_state(1)[0])
    return int(purpose) << 30 | state & _LOW_BITS


def seed_purpose(seed: int) -> Purpose:
    """Which purpose a seed from :func:`protocol_seed` was drawn for."""
    return Purpose(seed >> 30)


def episode_seed(run_seed: int, stream: int, episode: int) -> int:
    """The seed of training episode ``episode`` of stream ``stream``."""
    return protocol_seed(Purpose.TRAIN, run_seed, stream, episode)


def evaluation_seeds(run_seed: int, evaluation: int, episodes: int) -> list[int]:
    """Seeds of the ``episodes`` episodes of a run's ``evaluation``-th evaluation during training:
    fresh start states at every evaluation, none of them a training episode's."""
    return [protocol_seed(Purpose.EVAL, run_seed, evaluation, i) for i in range(episodes)]


def report_seeds(run_seed: int, eval_seed: int, episodes: int) -> list[int]:
    """Seeds of ``wm eval --seed eval_seed``: disjoint from training and from in-training evaluations."""
    return [protocol_seed(Purpose.REPORT, run_seed, eval_seed, i) for i in range(episodes)]


def held_out_seeds(tag: int, seed: int, episodes: int) -> list[int]:
    """Seeds of episodes no training or evaluation played (``wm dream``: tag 0, ``wm plan``: 1).
    They do not depend on the run's seed, so every run is judged on the same episodes."""
    return [protocol_seed(Purpose.HELD_OUT, tag, seed, i) for i in range(episodes)]


def dataset_seeds(seed: int, episodes: int) -> list[int]:
    """Seeds of the episodes ``wm data collect --seed seed`` records: held out from training and
    every evaluation, and from ``wm dream``'s and ``wm plan``'s episodes (tag 2)."""
    return held_out_seeds(2, seed, episodes)


class EpisodeSeeds(gym.Wrapper):
    """Reseeds every episode of stream ``stream`` once a reset has passed :data:`OPTION` (the run's
    seed and, per stream, the index of its first episode); until then resets pass through
    unchanged (``reset(seed=s)`` means what gymnasium says)."""

    def __init__(self, env: gym.Env, stream: int):
        super().__init__(env)
        self.stream = stream
        self.run_seed: int | None = None
        self.episode = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        plan = options.pop(OPTION, None)
        if plan is not None:
            self.run_seed, self.episode = int(plan["seed"]), int(plan["first"][self.stream])
        elif self.run_seed is not None:
            self.episode += 1  # an autoreset: the stream's next episode
        if self.run_seed is not None:
            seed = episode_seed(self.run_seed, self.stream, self.episode)
        return self.env.reset(seed=seed, options=options or None)
