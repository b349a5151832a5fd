"""benchmarks/learning.py and report/seeds.py: seeds trained and resumed, aggregated, and the
mistakes a user makes with benchmark folders."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worldmodels.errors import RunConfigError
from worldmodels.report.seeds import Bench, report, run_seeds, write_bench

ROOT = Path(__file__).resolve().parents[1]
TINY = (
    "--model.deter 16 --model.stoch 2 --model.classes 4 --model.units 16 --model.layers 1 --model.bins 15 "
    "--batch 2 --seq-len 4 --prefill 50 --train-ratio 8 --eval-every 100 --eval-episodes 2 --log-every 50"
).split()


def fake_seed(bench_dir: Path, seed: int, evals: list[tuple[int, float]], **config) -> None:
    """A seed folder as wm train leaves it: config.json and metrics.jsonl with evaluations."""
    run = bench_dir / f"seed-{seed}"
    run.mkdir(parents=True)
    cfg = {"env": "CartPole-v1", "seed": seed, "logdir": str(run), "steps": 300, "eval_episodes": 10, **config}
    (run / "config.json").write_text(json.dumps(cfg))
    rows = [{"env_steps": s, "time": 0.0, "eval/return": r} for s, r in evals]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_aggregates_seeds_on_known_data(tmp_path):
    write_bench(tmp_path, Bench(task="CartPole-v1", steps=300))
    curves = {0: [10, 200, 480], 1: [20, 300, 500], 2: [30, 100, 470], 3: [15, 250, 20]}
    for seed, returns in curves.items():
        fake_seed(tmp_path, seed, list(zip((100, 200, 300), returns)))
    out = report(tmp_path, window=150, threshold=475, reps=2000)
    # Window 150: the evaluations at 200 and 300 count. Seed scores 340, 400, 285, 135; IQM of four
    # drops one at each end: mean(285, 340) = 312.5.
    assert [out["per_seed"][s]["score"] for s in range(4)] == [340, 400, 285, 135]
    assert out["score"]["iqm"]["value"] == pytest.approx(312.5)
    assert out["score"]["mean"]["value"] == pytest.approx(290.0)
    assert out["score"]["iqm"]["ci_low"] <= 312.5 <= out["score"]["iqm"]["ci_high"]
    assert [out["per_seed"][s]["reached_at"] for s in range(4)] == [300, 300, None, None]
    assert out["seeds_reaching_threshold"] == 2
    assert [p["env_steps"] for p in out["curve"]] == [100, 200, 300]


def test_report_refuses_mixed_settings_and_unfinished_folders(tmp_path):
    write_bench(tmp_path, Bench(task="CartPole-v1", steps=300))
    fake_seed(tmp_path, 0, [(100, 5.0)])
    with pytest.raises(RunConfigError, match="no seed .* has reached 300 env steps .*seed 0 at 100"):
        report(tmp_path)
    fake_seed(tmp_path, 1, [(300, 5.0)])
    fake_seed(tmp_path, 2, [(300, 5.0)], eval_episodes=3)
    with pytest.raises(RunConfigError, match="seed 2 .* other settings .*eval_episodes: 10 \\(seed 1\\) vs 3"):
        report(tmp_path)
    with pytest.raises(RunConfigError, match="not a benchmark folder"):
        report(tmp_path / "seed-0")


def test_a_folder_of_other_settings_is_refused(tmp_path):
    write_bench(tmp_path, Bench(task="CartPole-v1", steps=300, flags=["--batch", "4"]))
    write_bench(tmp_path, Bench(task="CartPole-v1", steps=600, flags=["--batch", "4"]))  # longer: fine
    with pytest.raises(RunConfigError, match="flags: stored \\['--batch', '4'\\], given \\['--batch', '8'\\]"):
        write_bench(tmp_path, Bench(task="CartPole-v1", steps=300, flags=["--batch", "8"]))
    with pytest.raises(ValueError, match="at least one seed"):
        run_seeds(tmp_path, Bench(task="CartPole-v1"), [])


def test_zero_seeds_on_the_command_line():
    out = subprocess.run(
        [sys.executable, "benchmarks/learning.py", "--task", "CartPole-v1", "--seeds", "0"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "--seeds must be >= 1" in out.stderr


def test_seeds_train_resume_and_skip(tmp_path):
    bench = Bench(task="CartPole-v1", steps=100, flags=TINY)
    lines = []
    assert run_seeds(tmp_path, bench, [0, 1], jobs=2, threads=1, echo=lines.append) == {0: 0, 1: 0}
    longer = Bench(task="CartPole-v1", steps=200, flags=TINY)
    assert run_seeds(tmp_path, longer, [0], threads=1, echo=lines.append) == {0: 0}
    assert run_seeds(tmp_path, longer, [0], threads=1, echo=lines.append) == {0: 0}
    assert "seed 0: resuming at 100 env steps" in lines and lines[-1] == "seed 0: finished at 200 env steps"
    out = report(tmp_path, upto=100, reps=200)
    assert out["seeds"] == [0, 1] and out["per_seed"][0]["evals_in_window"] >= 1
    final = Bench(task="CartPole-v1", steps=200, flags=TINY, final_episodes=3)
    assert run_seeds(tmp_path, final, [0], threads=1, echo=lines.append) == {0: 0}
    assert "seed 0: wm eval over 3 episodes" in lines
    assert json.loads((tmp_path / "seed-0" / "eval.json").read_text())["episodes"] == 3
    assert report(tmp_path, upto=200, reps=200)["per_seed"][0]["final_eval"]["episodes"] == 3
