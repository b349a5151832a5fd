import os

import pytest
import torch

from tests import toy_envs
from worldmodels.config import Config, ModelConfig, TransformerConfig

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
toy_envs.register()
# Tiny models gain nothing from a second thread, and two threads next to any other busy
# process slow every step down many times over (see docs/PLATFORM.md).
torch.set_num_threads(1)

# Small enough that a train step takes milliseconds.
TINY_TRANSFORMER = dict(dim=16, layers=2, heads=2, context=4)
TINY_MODEL = dict(deter=32, stoch=4, classes=4, units=32, layers=1, cnn_depth=4, image_size=16, bins=31)


def tiny_config(tmp_path, **overrides) -> Config:
    base = dict(
        logdir=str(tmp_path / "run"),
        steps=300,
        prefill=100,
        batch=4,
        seq_len=8,
        train_ratio=32,
        eval_every=200,
        eval_episodes=1,
        log_every=100,
        checkpoint_every=200,
        threads=1,
        model=ModelConfig(**TINY_MODEL),
        transformer=TransformerConfig(**TINY_TRANSFORMER),
    )
    base.update(overrides)
    return Config(**base)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
