"""The CLI end to end at tiny size: train, resume, eval, dream, and the errors users meet."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from worldmodels.cli import main

TINY = (
    "--model.deter 32 --model.stoch 4 --model.classes 4 --model.units 32 --model.layers 1 "
    "--model.cnn-depth 4 --model.image-size 16 --model.bins 31 --batch 4 --seq-len 8 "
    "--prefill 100 --train-ratio 32 --eval-every 200 --eval-episodes 1 --log-every 100 --quiet --threads 1"
).split()


def train(tmp_path, *args, steps=300, name="run"):
    logdir = tmp_path / name
    code = main(["train", "--steps", str(steps), "--logdir", str(logdir), *TINY, *args])
    return code, logdir


def test_discrete_state_train_resume_eval_dream(tmp_path):
    code, run = train(tmp_path, "--env", "CartPole-v1")
    assert code == 0
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl", "curve.png", "dream/metrics.json"):
        assert (run / name).exists(), name
    assert list((run / "replay").glob("chunk-*.npz"))
    assert (run / "dream" / "trajectories.png").exists()
    assert (run / "dream" / "dream.mp4").stat().st_size > 0  # CartPole rendered in the dream

    assert main(["train", "--resume", str(run), "--steps", "500", "--quiet", "--no-finish"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["env_steps"] == 500

    assert main(["eval", str(run), "--episodes", "2", "--video"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert {"mean_return", "std_return", "episodes", "env_steps"} <= set(result)
    assert result["episodes"] == 2 and result["env_steps"] == 500
    assert (run / "eval.mp4").stat().st_size > 0

    threads = torch.get_num_threads()
    try:  # --threads: one core for this command, beside other jobs
        assert main(["dream", str(run), "--context", "3", "--horizon", "10", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((run / "dream" / "metrics.json").read_text())
    assert 1 <= len(metrics["mse"]) <= 10 and len(metrics["psnr"]) == len(metrics["mse"])


def test_continuous_state(tmp_path):
    code, run = train(tmp_path, "--env", "Pendulum-v1", "--max-episode-steps", "100", "--no-finish")
    assert code == 0
    assert json.loads((run / "config.json").read_text())["env"] == "Pendulum-v1"
    assert main(["dream", str(run), "--context", "3", "--horizon", "8", "--episodes", "1"]) == 0
    assert (run / "dream" / "dream.gif").stat().st_size > 0  # the animated trajectory plot


def test_pixels_dream_writes_video_and_metrics(tmp_path):
    code, run = train(tmp_path, "--env", "CartPole-v1", "--obs", "pixels", steps=250)
    assert code == 0
    dream = run / "dream"
    assert (dream / "dream.mp4").stat().st_size > 0 and (dream / "dream.gif").stat().st_size > 0
    metrics = json.loads((dream / "metrics.json").read_text())
    assert metrics["observation"] == "image" and all(p > 0 for p in metrics["psnr"])
    assert len(metrics["baseline_psnr"]) == len(metrics["psnr"])


def test_errors_are_clear(tmp_path, capsys):
    assert main(["train", "--env", "CartPol-v1", "--logdir", str(tmp_path / "a"), *TINY]) == 2
    assert "Closest registered ids: CartPole-v1" in capsys.readouterr().err

    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "holds no run" in capsys.readouterr().err

    code, run = train(tmp_path, "--env", "wmtest/Cue-v0", "--no-finish", steps=150)
    assert code == 0
    assert main(["train", "--resume", str(run), "--env", "Pendulum-v1"]) == 2
    err = capsys.readouterr().err
    assert "conflict" in err and "--env: stored 'wmtest/Cue-v0', given 'Pendulum-v1'" in err

    assert main(["train", "--logdir", str(run), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err

    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_nan_loss_stops_naming_the_term_and_keeps_the_checkpoint(tmp_path, capsys):
    code, run = train(tmp_path, "--env", "wmtest/NaNReward-v0", "--checkpoint-every", "50", "--no-finish")
    assert code == 2
    err = capsys.readouterr().err
    assert "loss term 'reward'" in err and "no parameters were updated" in err
    assert not (run / "checkpoint.pt").exists() or "last good checkpoint" in err


def test_kill_9_then_resume(tmp_path):
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "worldmodels.cli", "train", "--env", "wmtest/Cue-v0", "--steps", "100000"]
    args += ["--logdir", str(run), "--checkpoint-every", "100", *TINY]
    code = (
        "import sys, tests.toy_envs as t; t.register(); from worldmodels.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *args[3:]], cwd=Path(__file__).parent.parent)
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run / "checkpoint.pt").exists()
    assert main(["train", "--resume", str(run), "--steps", "400", "--quiet", "--no-finish"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert rows[-1]["env_steps"] >= 400


@pytest.mark.parametrize("flag", ["--obs", "--size"])
def test_bad_choices(tmp_path, capsys, flag):
    assert main(["train", flag, "nonsense", "--logdir", str(tmp_path / "x"), *TINY]) == 2
    assert "must be one of" in capsys.readouterr().err


def test_envs_in_worker_processes(tmp_path):
    code, run = train(tmp_path, "--env", "CartPole-v1", "--envs", "2", "--no-finish", steps=300)
    assert code == 0
    streams = {p.stem.split("-s")[-1] for p in (run / "replay").glob("chunk-*.npz")}
    assert streams == {"0", "1"}


def test_deterministic_runs_repeat_exactly(tmp_path):
    def losses(name):
        code, run = train(tmp_path, "--env", "wmtest/Cue-v0", "--deterministic", "--no-finish", steps=250, name=name)
        assert code == 0
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k.startswith(("loss/", "episode/"))} for r in rows]

    assert losses("a") == losses("b")


def test_a_typo_leaves_no_run_behind_and_resume_without_checkpoint_restarts(tmp_path, capsys):
    logdir = tmp_path / "typo"
    assert main(["train", "--env", "CartPol-v1", "--logdir", str(logdir), *TINY]) == 2
    assert not (logdir / "config.json").exists()
    code, run = train(tmp_path, "--env", "wmtest/Cue-v0", "--no-finish", "--checkpoint-every", "100000", steps=120)
    assert code == 0
    (run / "checkpoint.pt").unlink()
    (run / "checkpoint.prev.pt").unlink()
    assert main(["train", "--resume", str(run), "--steps", "150", "--quiet", "--no-finish"]) == 0
    assert "no checkpoint yet" in capsys.readouterr().out


def test_sigterm_saves_a_checkpoint_and_resume_continues(tmp_path):
    run = tmp_path / "term"
    code = (
        "import sys, tests.toy_envs as t; t.register(); from worldmodels.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["train", "--env", "wmtest/Cue-v0", "--steps", "100000", "--logdir", str(run), *TINY]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=Path(__file__).parent.parent)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    steps = json.loads(
        subprocess.check_output(
            [
                sys.executable,
                "-c",
                "import torch,sys; print(torch.load(sys.argv[1], weights_only=True)['counters']['env_steps'])",
                str(run / "checkpoint.pt"),
            ]
        )
    )
    assert steps > 100  # saved at the moment it was stopped, not at a periodic checkpoint
