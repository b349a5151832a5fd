"""The staged V/M/C pipeline (Ha & Schmidhuber 2018): collect -> V -> M -> C evolved by CMA-ES.

``stages``: the trainer of ``wm train --agent vmc``; ``fitness``: scoring controller candidates
in the dream or the real env; ``dream_env``: M as a gymnasium vector env; ``cmaes``: the
optimiser; ``workers``: a process pool that survives its workers.
"""
