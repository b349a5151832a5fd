"""worldmodels: learned world models (RSSM, ensembles, V+M, plug-ins) that train fast on CPU and GPU.

The public API, imported lazily so ``import worldmodels`` stays cheap::

    run = worldmodels.load_run("runs/cartpole")    # config, agent, world model, counters
    run.world_model.observe / imagine / predict / loss
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "worldmodels.config",
    "ModelConfig": "worldmodels.config",
    "AgentConfig": "worldmodels.config",
    "DreamerConfig": "worldmodels.config",
    "PlanConfig": "worldmodels.config",
    "EnsembleConfig": "worldmodels.config",
    "CEM": "worldmodels.planning",
    "MPPI": "worldmodels.planning",
    "MCTS": "worldmodels.planning",
    "GaussianEnsemble": "worldmodels.models.ensemble",
    "PETS": "worldmodels.agents.pets",
    "LatentMPC": "worldmodels.agents.mpc",
    "ObsSpec": "worldmodels.specs",
    "ActionSpec": "worldmodels.specs",
    "WorldModel": "worldmodels.models.world_model",
    "LatentState": "worldmodels.models.rssm",
    "Dreamer": "worldmodels.agents.dreamer",
    "make_dreamer": "worldmodels.agents.dreamer",
    "make_env": "worldmodels.envs.make",
    "Domain": "worldmodels.envs.domains",
    "Randomization": "worldmodels.envs.domains",
    "Disturbance": "worldmodels.envs.disturbances",
    "Disturbed": "worldmodels.envs.disturbances",
    "CostWrapper": "worldmodels.envs.costs",
    "make_safe": "worldmodels.envs.safe",
    "PIDLagrangian": "worldmodels.behavior.constraints",
    "evaluate_grid": "worldmodels.report.ood",
    "evaluate_domain": "worldmodels.report.ood",
    "ReplayStore": "worldmodels.data.replay",
    "Dataset": "worldmodels.data.episodes",
    "load_dataset": "worldmodels.data.datasets",
    "save_dataset": "worldmodels.data.datasets",
    "open_dataset": "worldmodels.run.datasets",
    "record_dataset": "worldmodels.run.record",
    "Recording": "worldmodels.run.record",
    "Trainer": "worldmodels.run.train",
    "load_run": "worldmodels.run.runs",
    "run_episode": "worldmodels.run.collect",
    "evaluate": "worldmodels.report.evaluate",
    "dream": "worldmodels.report.dream",
    "WorldModelBase": "worldmodels.models.base",
    "Agent": "worldmodels.agents.base",
    "AgentSpec": "worldmodels.agents.base",
    "register_family": "worldmodels.registry",
    "register_agent": "worldmodels.registry",
    "register_planner": "worldmodels.registry",
    "register_suite": "worldmodels.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'worldmodels' has no attribute {name!r}")
