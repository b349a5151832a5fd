"""Monte-Carlo tree search for discrete actions (MuZero-style pUCT on model steps).

The caller hands three callables, so the search never sees a model:

* ``step(state, action) -> (next_state, reward, cont)``: one model step (``cont`` is the
  probability the episode goes on; it discounts everything after the step),
* ``value(state) -> float``: the bootstrap at a leaf,
* ``prior(state) -> probs (A,)`` (optional): the policy prior of pUCT; uniform without one,
* ``allowed(state) -> mask (A,)`` (optional): the actions the search may take from a state
  (cost-aware planning prunes those whose predicted cost exceeds the budget); where none is
  allowed, all are, so the search always has a move.

States are opaque to the search. Q-values are min-max normalised over the tree, as in MuZero,
so ``c_puct`` does not depend on the reward scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import PlannerConfigError, PlanningError

StepFn = Callable[[Any, int], tuple[Any, float, float]]


class MCTSResult(NamedTuple):
    action: int  # most visited root action
    visits: Tensor  # (A,) root visit counts
    q: Tensor  # (A,) root action values (nan where unvisited)
    value: float  # visit-weighted root value


class _Node:
    __slots__ = ("state", "prior", "visits", "value_sum", "reward", "cont", "children", "allowed")

    def __init__(self, state: Any, prior: Tensor, allowed: list[bool] | None = None):
        self.state, self.prior = state, prior
        n = len(prior)
        self.allowed = allowed if allowed is not None and any(allowed) else [True] * n
        self.visits = [0] * n
        self.value_sum = [0.0] * n
        self.reward = [0.0] * n
        self.cont = [1.0] * n
        self.children: list[_Node | None] = [None] * n

    def q(self, a: int) -> float:
        return self.value_sum[a] / self.visits[a]


class _MinMax:
    def __init__(self):
        self.low, self.high = math.inf, -math.inf

    def update(self, x: float) -> None:
        self.low, self.high = min(self.low, x), max(self.high, x)

    def normalize(self, x: float) -> float:
        return (x - self.low) / (self.high - self.low) if self.high > self.low else x


class MCTS:
    @classmethod
    def from_config(cls, action_dim: int, plan, **_) -> MCTS:
        """Built from a ``PlanConfig`` for ``action_dim`` discrete actions."""
        return cls(
            action_dim,
            simulations=plan.simulations,
            discount=plan.discount,
            c_puct=plan.c_puct,
            dirichlet_alpha=plan.dirichlet_alpha,
            root_noise=plan.root_noise,
        )

    def __init__(
        self,
        num_actions: int,
        *,
        simulations: int = 50,
        discount: float = 0.99,
        c_puct: float = 1.25,
        dirichlet_alpha: float = 0.3,
        root_noise: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        if num_actions < 2:
            raise PlannerConfigError(
                f"MCTS searches over discrete actions and needs at least 2, got {num_actions}; "
                "for continuous actions use --planner cem or mppi"
            )
        if simulations < 1:
            raise PlannerConfigError(f"MCTS simulations must be >= 1, got {simulations}")
        if not 0.0 <= root_noise <= 1.0:
            raise PlannerConfigError(f"root_noise is a mixing fraction in [0, 1], got {root_noise}")
        self.num_actions, self.simulations, self.discount = num_actions, simulations, discount
        self.c_puct, self.alpha, self.root_noise = c_puct, dirichlet_alpha, root_noise
        self.generator = generator

    def reset(self) -> None:
        """Nothing carries between decisions (the tree is rebuilt); kept for the planner interface."""

    @torch.no_grad()
    def search(
        self,
        root_state: Any,
        step: StepFn,
        value: Callable[[Any], float],
        prior: Callable[[Any], Tensor] | None = None,
        allowed: Callable[[Any], Tensor] | None = None,
    ) -> MCTSResult:
        """Run the simulations from ``root_state`` (root noise as configured); visits and values."""
        return self._search(root_state, step, value, prior, self.root_noise, allowed)

    @torch.no_grad()
    def choose(
        self,
        root_state: Any,
        step: StepFn,
        value: Callable[[Any], float],
        prior: Callable[[Any], Tensor] | None = None,
        explore: bool = False,
        allowed: Callable[[Any], Tensor] | None = None,
    ) -> int:
        """One decision: exploring (training) mixes Dirichlet noise into the root prior and samples
        an action in proportion to its visits; otherwise no noise and the most visited action."""
        result = self._search(root_state, step, value, prior, self.root_noise if explore else 0.0, allowed)
        if not explore:
            return result.action
        return int(torch.multinomial(result.visits / result.visits.sum(), 1, generator=self.generator))

    def _search(self, root_state, step, value, prior, root_noise: float, allowed=None) -> MCTSResult:
        prior_fn = prior or (lambda s: torch.full((self.num_actions,), 1.0 / self.num_actions))

        def new_node(state: Any) -> _Node:
            mask = None if allowed is None else [bool(x) for x in torch.as_tensor(allowed(state)).flatten()]
            return _Node(state, self._prior(prior_fn(state)), mask)

        root = new_node(root_state)
        if root_noise > 0:
            noise = torch._standard_gamma(torch.full((self.num_actions,), float(self.alpha)), generator=self.generator)
            root.prior = (1 - root_noise) * root.prior + root_noise * noise / noise.sum()
        bounds = _MinMax()
        for _ in range(self.simulations):
            node, path = root, []
            while True:  # select down to an edge that has not been expanded
                a = self._select(node, bounds)
                path.append((node, a))
                if node.children[a] is None:
                    break
                node = node.children[a]
            next_state, reward, cont = step(node.state, a)
            leaf = new_node(next_state)
            node.children[a], node.reward[a], node.cont[a] = leaf, float(reward), float(cont)
            ret = float(value(next_state))
            if not math.isfinite(ret) or not math.isfinite(node.reward[a]):
                raise PlanningError(
                    f"the model's reward or value is not finite ({node.reward[a]}, {ret}) during tree search; "
                    "check the checkpoint and its inputs"
                )
            for parent, act in reversed(path):
                ret = parent.reward[act] + self.discount * parent.cont[act] * ret
                parent.value_sum[act] += ret
                parent.visits[act] += 1
                bounds.update(parent.q(act))
        visits = torch.tensor(root.visits, dtype=torch.float32)
        q = torch.tensor([root.q(a) if root.visits[a] else float("nan") for a in range(self.num_actions)])
        best = max(
            (a for a in range(self.num_actions) if root.allowed[a]),
            key=lambda a: (root.visits[a], q[a].nan_to_num(-math.inf).item()),
        )
        root_value = float(sum(root.value_sum) / max(sum(root.visits), 1))
        return MCTSResult(best, visits, q, root_value)

    def _prior(self, probs: Tensor) -> Tensor:
        probs = torch.as_tensor(probs, dtype=torch.float32).flatten()
        if probs.shape != (self.num_actions,):
            raise PlanningError(f"prior must give {self.num_actions} probabilities, got shape {tuple(probs.shape)}")
        return probs / probs.sum().clamp_min(1e-8)

    def _select(self, node: _Node, bounds: _MinMax) -> int:
        total = sum(node.visits)
        scale = self.c_puct * math.sqrt(total + 1)
        best, best_score = 0, -math.inf
        for a in range(self.num_actions):
            if not node.allowed[a]:
                continue
            n = node.visits[a]
            q = bounds.normalize(node.q(a)) if n else 0.0
            score = q + scale * float(node.prior[a]) / (1 + n)
            if score > best_score:
                best, best_score = a, score
        return best
