"""Pins docs/DESIGN.md's time alignment: step t holds obs_t, reward_t (received on arriving at obs_t),
is_first_t, is_terminal_t and action_t (taken after seeing obs_t)."""

import numpy as np
import torch

from worldmodels.envs.make import make_vector_env
from worldmodels.run.collect import Collector


def test_collector_records_reward_on_arrival_and_action_after_obs():
    env = make_vector_env("wmtest/Counter-v0", 1)
    collector = Collector(env, seed=0)
    seen = []

    def act(obs, is_first):
        seen.append(obs["vector"][0, 0])
        return obs["vector"] / 10.0  # the action encodes the obs it was chosen from

    rows = [collector.step(act)[0] for _ in range(8)]
    env.close()
    obs = [r["vector"][0, 0] for r in rows]
    # Counter: obs 0..4 (4 is terminal), then the reset step starts at 0 again.
    assert obs == [0, 1, 2, 3, 4, 0, 1, 2]
    assert [r["reward"][0] for r in rows] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert [bool(r["is_first"][0]) for r in rows] == [True, False, False, False, False, True, False, False]
    assert [bool(r["is_terminal"][0]) for r in rows] == [False, False, False, False, True, False, False, False]
    actions = [r["action"][0, 0] for r in rows]
    np.testing.assert_allclose(actions, [0, 0.1, 0.2, 0.3, 0.0, 0, 0.1, 0.2], atol=1e-6)  # 0 on the last step


def test_model_is_fed_previous_action_zeroed_at_episode_start():
    from tests.test_rssm import make

    wm = make().world_model
    captured = {}
    original = wm.rssm.observe

    def spy(embed, prev_action, is_first, state=None, sample=True):
        captured["prev_action"] = prev_action
        return original(embed, prev_action, is_first, state, sample)

    wm.rssm.observe = spy
    action = torch.arange(1, 7, dtype=torch.float32).reshape(1, 6, 1).repeat(1, 1, 2)
    batch = {
        "vector": torch.zeros(1, 6, 3),
        "action": action,
        "reward": torch.zeros(1, 6),
        "is_first": torch.tensor([[True, False, False, True, False, False]]),
        "is_terminal": torch.zeros(1, 6, dtype=torch.bool),
    }
    wm.loss(batch)
    assert captured["prev_action"][0, :, 0].tolist() == [0, 1, 2, 3, 4, 5]  # action_{t-1}
    # observe zeroes prev_action where is_first (t=0 and t=3) before using it.
