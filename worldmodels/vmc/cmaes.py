"""CMA-ES (Hansen 2016, "The CMA Evolution Strategy: A Tutorial"), minimising.

Written out rather than taken from the ``cma`` package because a stopped run must resume from
its last generation out of a checkpoint that loads without executing code: ``cma`` keeps its
state in a graph of Python objects reachable only through pickle, while the state here is five
arrays, two numbers and the generator's state. The defaults are the tutorial's (Table 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class CMAES:
    def __init__(self, x0: np.ndarray, sigma0: float, *, popsize: int | None = None, seed: int = 0):
        n = len(x0)
        if n < 1 or sigma0 <= 0:
            raise ValueError(f"CMA-ES needs a non-empty start and sigma0 > 0, got {n} dims, sigma0 {sigma0}")
        self.dim = n
        self.popsize = popsize or 4 + int(3 * math.log(n))
        if self.popsize < 2:
            raise ValueError(f"CMA-ES needs a population of at least 2, got {self.popsize}")
        mu = self.popsize // 2
        w = math.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        self.weights = w / w.sum()
        self.mueff = 1.0 / float(np.sum(self.weights**2))
        me = self.mueff
        self.cc = (4 + me / n) / (n + 4 + 2 * me / n)
        self.cs = (me + 2) / (n + me + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + me)
        self.cmu = min(1 - self.c1, 2 * (me - 2 + 1 / me) / ((n + 2) ** 2 + me))
        self.damps = 1 + 2 * max(0.0, math.sqrt((me - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))
        self.mean = np.asarray(x0, np.float64).copy()
        self.sigma = float(sigma0)
        self.C = np.eye(n)
        self.pc, self.ps = np.zeros(n), np.zeros(n)
        self.generation = 0
        self.rng = np.random.default_rng(seed)
        self._eigen()

    def _eigen(self) -> None:
        self.C = (self.C + self.C.T) / 2
        d2, self.B = np.linalg.eigh(self.C)
        self.D = np.sqrt(np.maximum(d2, 1e-20))

    def ask(self) -> np.ndarray:
        """``(popsize, dim)`` candidates drawn from N(mean, sigma^2 C)."""
        z = self.rng.standard_normal((self.popsize, self.dim))
        return self.mean + self.sigma * (z * self.D) @ self.B.T

    def tell(self, candidates: np.ndarray, losses: np.ndarray) -> None:
        """Update from the candidates :meth:`ask` gave and their losses (lower is better)."""
        losses = np.asarray(losses, np.float64)
        if candidates.shape != (self.popsize, self.dim) or losses.shape != (self.popsize,):
            raise ValueError(
                f"tell() takes the {self.popsize} candidates from ask() and one loss each; "
                f"got {candidates.shape} and {losses.shape}"
            )
        losses = np.where(np.isfinite(losses), losses, np.inf)  # a failed candidate ranks last
        n, mu = self.dim, len(self.weights)
        best = candidates[np.argsort(losses, kind="stable")[:mu]]
        old = self.mean
        self.mean = self.weights @ best
        y = (self.mean - old) / self.sigma
        inv_sqrt_c = self.B @ np.diag(1 / self.D) @ self.B.T
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * inv_sqrt_c @ y
        g = self.generation + 1
        norm = np.linalg.norm(self.ps) / math.sqrt(1 - (1 - self.cs) ** (2 * g)) / self.chi_n
        hsig = float(norm < 1.4 + 2 / (n + 1))
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * y
        steps = (best - old) / self.sigma
        rank_mu = steps.T @ (self.weights[:, None] * steps)
        self.C = (
            (1 - self.c1 - self.cmu) * self.C
            + self.c1 * (np.outer(self.pc, self.pc) + (1 - hsig) * self.cc * (2 - self.cc) * self.C)
            + self.cmu * rank_mu
        )
        self.sigma *= math.exp(min(1.0, (self.cs / self.damps) * (np.linalg.norm(self.ps) / self.chi_n - 1)))
        self.generation = g
        self._eigen()

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain arrays and numbers: enough to continue exactly where this left off."""
        return {
            "mean": self.mean.copy(),
            "sigma": self.sigma,
            "C": self.C.copy(),
            "pc": self.pc.copy(),
            "ps": self.ps.copy(),
            "generation": self.generation,
            "popsize": self.popsize,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["mean"]) != self.dim or int(state["popsize"]) != self.popsize:
            raise ValueError(
                f"the saved CMA-ES state has {len(state['mean'])} dims and population {state['popsize']}; "
                f"this one {self.dim} and {self.popsize}. Resume with the run's own settings."
            )
        self.mean = np.asarray(state["mean"], np.float64).copy()
        self.sigma = float(state["sigma"])
        self.C = np.asarray(state["C"], np.float64).copy()
        self.pc = np.asarray(state["pc"], np.float64).copy()
        self.ps = np.asarray(state["ps"], np.float64).copy()
        self.generation = int(state["generation"])
        self.rng.bit_generator.state = state["rng"]
        self._eigen()
