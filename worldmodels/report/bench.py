"""``wm bench planners``: decision latency of every planner on an ensemble and a latent model.

The reference setting: a 5-member ensemble, 500 candidates, horizon 15, 5 iterations, one
particle per member and candidate; Pendulum's sizes (3-D state, 1-D action), CartPole's for
MCTS (4-D state, 2 actions). ``cem_linear`` plans the gains of a linear feedback law
(``--plan.controller linear``) with the same settings. The latent rows use the RSSM of the
given size with the same planner settings (plus the actor's 24 proposals). The ``*_constrained``
rows plan with ``--plan.objective constrained`` under ``--cost-limit 0`` on a model with costs
(the ensemble's state-cost nets, the RSSM's cost head and the Lagrangian's cost critic). Weights are
untrained: latency does not depend on them. Timed with the torch threads of this process, after warm-up decisions.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from ..config import Config, EnsembleConfig, ModelConfig, PlanConfig, apply_size
from ..run.runs import build_agent
from ..specs import VECTOR, ActionSpec, ObsSpec

CASES = {
    # name: (agent, planner, state dim, action spec); "_constrained": under a cost limit
    "cem": ("pets", "cem", 3, ActionSpec(1, False)),
    "cem_constrained": ("pets", "cem", 3, ActionSpec(1, False)),
    "mppi": ("pets", "mppi", 3, ActionSpec(1, False)),
    "mcts": ("pets", "mcts", 4, ActionSpec(2, True)),
    "cem_linear": ("pets", "cem", 3, ActionSpec(1, False)),  # --plan.controller linear
    "cem_latent": ("mpc", "cem", 3, ActionSpec(1, False)),
    "cem_latent_constrained": ("mpc", "cem", 3, ActionSpec(1, False)),
    "mppi_latent": ("mpc", "mppi", 3, ActionSpec(1, False)),
    "mcts_latent": ("mpc", "mcts", 4, ActionSpec(2, True)),
}


def _decision_ms(agent, state_dim: int, decisions: int, warmup: int = 3) -> list[float]:
    obs = {VECTOR: torch.randn(1, state_dim)}
    carry, times = None, []
    for i in range(warmup + decisions):
        start = time.perf_counter()
        _, carry = agent.act(obs, torch.tensor([i == 0]), carry, mode=True)
        if i >= warmup:
            times.append(1000 * (time.perf_counter() - start))
    return times


def bench_planners(
    *,
    decisions: int = 20,
    size: str = "XXS",
    plan: PlanConfig | None = None,
    ensemble: dict | None = None,
    cases: list[str] | None = None,
) -> dict:
    """Median ms per action of each case in :data:`CASES`, in fp32 and (shooting planners) bf16."""
    plan = plan or PlanConfig()
    ens = dataclasses.replace(EnsembleConfig(), **(ensemble or {}))
    out: dict = {
        "setting": {
            "ensemble_members": ens.members,
            "ensemble_units": ens.units,
            "particles_per_member": plan.particles,
            "population": plan.population,
            "horizon": plan.horizon,
            "iterations": plan.iterations,
            "mcts_simulations": plan.simulations,
            "latent_size": size,
            "torch_threads": torch.get_num_threads(),
            "decisions": decisions,
        }
    }
    for name in cases or list(CASES):
        agent_kind, planner, state_dim, action_spec = CASES[name]
        row = {}
        constrained = name.endswith("_constrained")
        limits = {"cost_limit": 0.0, "cost_horizon": 200} if constrained else {}
        for bf16 in (False, True):
            cfg = Config(
                agent=agent_kind,
                planner=planner,
                plan=dataclasses.replace(
                    plan,
                    bf16=bf16,
                    controller="linear" if name.endswith("_linear") else "sequence",
                    objective="constrained" if constrained else plan.objective,
                ),
                ensemble=ens,
                model=apply_size(ModelConfig(), size),
                **limits,
            )
            obs_spec = ObsSpec(vector=state_dim, cost=constrained)
            agent = build_agent(cfg, obs_spec, action_spec, device=torch.device("cpu")).eval()
            ms = _decision_ms(agent, state_dim, decisions)
            key = "ms_per_action_bf16" if bf16 else "ms_per_action"
            row[key] = round(statistics.median(ms), 2)
            if planner == "mcts":
                break  # MCTS steps one state at a time: nothing for bf16 to batch
        out[name] = row
    return out
