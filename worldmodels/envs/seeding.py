"""Every training episode gets a seed of its own, derived from the run's seed, the env's stream
and the episode's index in that stream.

Why: an env reset once with the run's seed and then autoreset draws each episode from where the
last one left its generator, so the only way to continue it after a crash is to have saved it.
With a seed per episode, a resumed run starts each stream at the next episode index its replay
does not hold yet: it never collects an episode it already has, and a run checkpointed where
every env starts an episode resumes with exactly the envs it stopped with.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# The reset option that switches a stream to per-episode seeds: {"seed": run seed, "first": [index per stream]}.
OPTION = "episode_seeds"


def episode_seed(run_seed: int, stream: int, episode: int) -> int:
    """A 32-bit seed that no other (run seed, stream, episode) shares by construction of SeedSequence."""
    return int(np.random.SeedSequence([run_seed, stream, episode]).generate_state(1)[0])


class EpisodeSeeds(gym.Wrapper):
    """Reseeds every episode of stream ``stream`` once a reset has passed :data:`OPTION`; until
    then resets pass through unchanged (``reset(seed=s)`` means what gymnasium says)."""

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
