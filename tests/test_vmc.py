"""The V/M/C family: VAE, MDN, dream env, CMA-ES, the staged pipeline and its resume."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from worldmodels.agents.vmc import ControllerShape, controller_act
from worldmodels.cli import main
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.models.vae import ConvVAE
from worldmodels.nn.dists import mdn_log_prob, mdn_sample
from worldmodels.report.frame_metrics import ssim
from worldmodels.run import checkpoint
from worldmodels.run.logger import read_metrics
from worldmodels.vmc.cmaes import CMAES
from worldmodels.vmc.dream_env import DreamEnv, DreamVecEnv
from worldmodels.vmc.workers import ResilientPool

# Every stage at toy size on a 64x64 pixel env (tests/toy_envs.py: DodgeEnv).
TINY = [
    "train", "--agent", "vmc", "--env", "wmtest/Dodge-v0", "--rollouts", "6", "--threads", "1", "--eval-episodes", "1",
    "--vmc.z", "8", "--vmc.vae-depth", "4", "--vmc.vae-steps", "30", "--vmc.vae-batch", "16",
    "--vmc.rnn-units", "32", "--vmc.rnn-steps", "30", "--vmc.rnn-batch", "8", "--vmc.rnn-seq", "8",
    "--vmc.population", "6", "--vmc.rollouts-per-candidate", "2", "--vmc.dream-max-steps", "40",
    "--vmc.workers", "1", "--vmc.eval-every", "2", "--vmc.collect-hold", "3",
]  # fmt: skip


def test_vae_reconstructs_a_small_image_set_below_a_bound():
    """Eight 64x64 images (a coloured background, a white square in a different place each):
    a VAE that ignored its input could at best output their mean image; the bound asks for a
    tenth of that error, which only a code that tells the images apart reaches."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    frames = torch.zeros(8, 64, 64, 3, dtype=torch.uint8)
    for i in range(8):
        frames[i] = (torch.rand(3, generator=g) * 200).to(torch.uint8)
        frames[i, 8 * i : 8 * i + 24, 36 - 4 * i : 60 - 4 * i] = 255
    vae = ConvVAE(3, z=8, depth=8, kl_tolerance=0.5)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(400):
        loss, _ = vae.loss(frames)
        opt.zero_grad()
        loss.backward()
        opt.step()
    target = frames.float() / 255
    mean_image_error = (target - target.mean(0)).square().sum((1, 2, 3)).mean().item()  # about 850
    recon = vae.decode(vae.encode(frames).mean)
    error = (recon - target).square().sum((1, 2, 3)).mean().item()  # about 25
    assert error < 0.1 * mean_image_error, (error, mean_image_error)


def test_mdn_log_prob_matches_a_known_mixture():
    logit_pi = torch.tensor([[0.3, -0.2, 1.0]])
    mu = torch.tensor([[-1.0, 0.5, 2.0]])
    log_sigma = torch.tensor([[0.1, -0.5, 0.3]])
    x = torch.tensor([0.7])
    pi = torch.softmax(logit_pi[0], 0)
    sigma = log_sigma[0].exp()
    density = sum(
        pi[k] * torch.exp(-0.5 * ((x - mu[0, k]) / sigma[k]) ** 2) / (sigma[k] * math.sqrt(2 * math.pi))
        for k in range(3)
    )
    assert torch.allclose(mdn_log_prob(logit_pi, mu, log_sigma, x), torch.log(density), atol=1e-6)


def test_mdn_sampling_at_low_temperature_returns_the_likeliest_mean():
    logit_pi = torch.tensor([[0.0, 2.0, 1.0]]).expand(4, 3).reshape(4, 1, 3)
    mu = torch.tensor([[-3.0, 1.5, 4.0]]).expand(4, 3).reshape(4, 1, 3)
    log_sigma = torch.zeros(4, 1, 3)
    sample = mdn_sample(logit_pi, mu, log_sigma, temperature=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sample, torch.full((4, 1), 1.5), atol=1e-2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        mdn_sample(logit_pi, mu, log_sigma, temperature=0.0)
    with pytest.raises(ValueError, match="at least one component"):
        MDNRNN(4, 2, units=8, mixtures=0)


def test_weighted_done_loss_ends_dreams_where_death_is_likely_enough():
    """Action 1 kills with probability 0.2 per step, action 0 never. Plain BCE (weight 1) learns
    odds 0.25, a negative logit, so a thresholded dream never ends; weight 10 turns them into
    odds 2.5 (logit ~ +0.9), and the dream ends after the risky action only."""
    torch.manual_seed(0)
    ends = {}
    for weight in (1.0, 10.0):
        rnn = MDNRNN(2, 2, units=8, mixtures=1, done_weight=weight)
        opt = torch.optim.Adam(rnn.parameters(), lr=1e-2)
        for _ in range(300):
            risky = torch.rand(64, 4) < 0.5
            action = torch.nn.functional.one_hot(risky.long(), 2).float()
            done = risky & (torch.rand(64, 4) < 0.2)
            z = torch.zeros(64, 4, 2)
            loss, _ = rnn.loss(z, action, z, torch.zeros(64, 4), done, torch.ones(64, 4, dtype=torch.bool))
            opt.zero_grad()
            loss.backward()
            opt.step()
        out, memory = rnn.step(torch.zeros(2, 2), torch.eye(2), rnn.initial(2))
        ends[weight] = MDNRNN.sample(out, 1.0)[2].tolist()
    assert ends == {1.0: [False, False], 10.0: [False, True]}
    with pytest.raises(ValueError, match="done-weight"):
        MDNRNN(2, 2, done_weight=0.0)


def test_done_threshold_calibration_matches_the_real_random_survival():
    """Bisection on the done threshold: the random policy's mean dream length lands on the target."""
    from types import SimpleNamespace

    from worldmodels.specs import ActionSpec
    from worldmodels.vmc.fitness import calibrate_done_threshold, random_dream_episodes

    torch.manual_seed(0)
    rnn = MDNRNN(4, 3, units=16, mixtures=2)
    with torch.no_grad():
        rnn.head.weight[-1].normal_(0, 2.0)  # a done head that depends on the state
    agent = SimpleNamespace(mdnrnn=rnn, action_spec=ActionSpec(3, True), cell=False)
    starts, kw = torch.randn(8, 4), {"temperature": 1.0, "max_steps": 200, "seed": 0}
    threshold = calibrate_done_threshold(agent, starts, 25.0, **kw)
    _, length = random_dream_episodes(agent, starts, episodes=64, done_threshold=threshold, **kw)
    assert 20 <= length <= 30, (threshold, length)


def test_held_random_actions_last_one_to_hold_steps_and_renew_at_episode_starts():
    from worldmodels.run.collect import held_random_policy
    from worldmodels.specs import ActionSpec

    act = held_random_policy(ActionSpec(2, False), np.random.default_rng(0), hold=10)
    actions = np.stack([act(None, np.zeros(3, bool)) for _ in range(3000)])  # (T, envs, A)
    for env in range(3):
        changes = np.flatnonzero(np.any(actions[1:, env] != actions[:-1, env], -1)) + 1
        runs = np.diff(changes)  # continuous draws never repeat, so every change is a renewal
        assert runs.min() >= 1 and runs.max() <= 10
        assert abs(runs.mean() - 5.5) < 0.5, runs.mean()  # uniform over 1..10
    before = act(None, np.zeros(3, bool))
    after = act(None, np.array([True, False, False]))  # a new episode in env 0 draws afresh
    assert not np.array_equal(before[0], after[0])
    discrete = held_random_policy(ActionSpec(3, True), np.random.default_rng(0), hold=4)(None, np.ones(5, bool))
    assert discrete.shape == (5, 3) and np.all(discrete.sum(-1) == 1)


def test_dream_env_is_a_valid_gymnasium_env():
    rnn = MDNRNN(6, 3, units=16, mixtures=2)
    check_env(DreamEnv(rnn, torch.randn(4, 6), 3, temperature=1.15, max_steps=30), skip_render_check=True)
    vec = DreamVecEnv(rnn, torch.randn(4, 6), 3, num_envs=5, max_steps=3)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (5, 6 + 16)
    ended = np.zeros(5, bool)
    for _ in range(4):  # after max_steps every env has ended once (terminated or truncated)
        _, _, term, trunc, _ = vec.step(vec.action_space.sample())
        ended |= term | trunc
    assert ended.all()
    with pytest.raises(ValueError, match="temperature"):
        DreamVecEnv(rnn, torch.randn(4, 6), 3, num_envs=2, temperature=0.0)


def test_cmaes_solves_rosenbrock_and_resumes_exactly():
    def rosenbrock(x):
        return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))

    es = CMAES(np.zeros(6), 0.5, seed=0)
    while es.generation < 400:
        xs = es.ask()
        es.tell(xs, [rosenbrock(x) for x in xs])
    assert rosenbrock(es.mean) < 1e-8
    state = es.state_dict()
    expected = es.ask()
    other = CMAES(np.zeros(6), 0.5, seed=123)
    other.load_state_dict(state)
    assert np.array_equal(other.ask(), expected)


def test_cmaes_evolves_a_controller_to_a_known_linear_policy():
    """Through the controller's own batched forward: CMA-ES recovers a linear map from
    features to tanh actions (8 parameters) to high precision."""
    shape = ControllerShape(inp=3, hidden=0, out=2)
    rng = np.random.default_rng(0)
    feats = torch.tensor(rng.standard_normal((64, 3)), dtype=torch.float32)
    true = torch.tensor(rng.standard_normal((1, shape.size)), dtype=torch.float32)
    target = controller_act(shape, true, feats[None], discrete=False)[0]
    es = CMAES(np.zeros(shape.size), 0.5, popsize=16, seed=0)
    for _ in range(150):
        xs = es.ask()
        acts = controller_act(shape, torch.tensor(xs, dtype=torch.float32), feats.expand(16, -1, -1), False)
        es.tell(xs, (acts - target).square().mean((1, 2)).numpy())
    assert np.allclose(es.mean, true[0].numpy(), atol=1e-2)


def test_ssim_matches_the_reference_implementation():
    """Values from skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1) on these seeded frames."""
    rng = np.random.default_rng(0)
    a = rng.random((2, 64, 64, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    assert np.allclose(ssim(a, b), [0.9447356914202927, 0.9433705762900891], atol=1e-9)
    assert np.allclose(ssim(a, a), 1.0)


def _crash_once(marker: str) -> int:
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # a worker dying mid-task, as a segfault would
    return 7


def _noop() -> None:
    pass


def test_a_crashed_worker_is_replaced_and_its_task_rerun(tmp_path):
    pool = ResilientPool(1, _noop, (), echo=lambda *a: None)
    try:
        assert pool.map(_crash_once, [str(tmp_path / "marker")] * 2) == [7, 7]
        assert pool.restarts == 1
    finally:
        pool.close()


def test_all_stages_end_to_end_then_eval_and_dream(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main([*TINY, "--vmc.generations", "2", "--logdir", run]) == 0
    for name in ("curve.png", "vae/recon.png", "dream/metrics.json", "dream/dream.mp4", "checkpoint.pt"):
        assert os.path.exists(os.path.join(run, name)), name
    ckpt = checkpoint.load(tmp_path / "run" / checkpoint.NAME)
    assert ckpt["counters"]["generation"] == 2 and ckpt["counters"]["episodes"] >= 6
    assert main(["eval", run, "--episodes", "2"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["episodes"] == 2 and 1 <= result["mean_return"] <= 40
    assert main(["dream", run, "--temperature", "1.15", "--horizon", "10", "--episodes", "1"]) == 0
    metrics = json.loads((tmp_path / "run" / "dream" / "metrics.json").read_text())
    assert {"ssim", "baseline_ssim", "psnr", "baseline_psnr"} <= set(metrics) and metrics["temperature"] == 1.15
    assert main(["dream", run, "--policy", "random", "--context", "2", "--horizon", "3", "--episodes", "3"]) == 0
    assert json.loads((tmp_path / "run" / "dream" / "metrics.json").read_text())["policy"] == "random"
    assert main(["plan", run]) == 2
    assert "acts without planning" in capsys.readouterr().err
    # Retrain only C, at another temperature in a calibrated dream: CMA-ES starts over.
    assert ckpt["done_threshold"] == 0.0  # the paper's rule by default
    retrain = ["train", "--resume", run, "--stage", "controller", "--retrain", "--no-finish"]
    assert main([*retrain, "--vmc.temperature", "1.0", "--vmc.generations", "1", "--vmc.calibrate-done"]) == 0
    assert "calibrated threshold" in capsys.readouterr().out
    ckpt = checkpoint.load(tmp_path / "run" / checkpoint.NAME)
    assert ckpt["counters"]["generation"] == 1 and ckpt["counters"]["rnn_steps"] == 30
    assert ckpt["done_threshold"] != 0.0
    # The discarded controller's rows are set aside; the other stages' rows stay.
    generations = [r["generation"] for r in read_metrics(tmp_path / "run") if "generation" in r]
    assert generations == [0, 1] and any("rnn_steps" in r for r in read_metrics(tmp_path / "run"))
    assert (tmp_path / "run" / "metrics.discarded.jsonl").read_text().count('"generation"') >= 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["vmc"]["temperature"] == 1.0
    assert main(["train", "--resume", run, "--retrain", "--no-finish"]) == 2  # which stage?
    assert main([*retrain[:4], "collect", "--retrain"]) == 2  # would discard the episodes
    assert main([*retrain, "--vmc.z", "4"]) == 2  # a shape: needs a new run


def test_a_stopped_controller_run_resumes_where_it_stopped(tmp_path):
    """Two generations, stop, two more == four in one go: same CMA-ES state, same controller."""
    first = tmp_path / "a"
    assert main([*TINY, "--vmc.generations", "0", "--logdir", str(first), "--no-finish"]) != 0  # validated
    assert main([*TINY, "--vmc.generations", "2", "--logdir", str(first), "--no-finish"]) == 0
    second = tmp_path / "b"
    shutil.copytree(first, second)
    assert main(["train", "--resume", str(first), "--vmc.generations", "4", "--no-finish"]) == 0
    for _ in range(2):  # one generation at a time, as a run killed after each would
        gens = checkpoint.load(second / checkpoint.NAME)["counters"]["generation"] + 1
        assert (
            main(
                [
                    "train",
                    "--resume",
                    str(second),
                    "--stage",
                    "controller",
                    "--vmc.generations",
                    str(gens),
                    "--no-finish",
                ]
            )
            == 0
        )
    a, b = (checkpoint.load(d / checkpoint.NAME) for d in (first, second))
    assert a["counters"]["generation"] == b["counters"]["generation"] == 4
    assert torch.equal(a["es"]["mean"], b["es"]["mean"])
    assert torch.equal(a["agent"]["controller"], b["agent"]["controller"])


def test_stage_order_and_bad_settings_get_clear_errors(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main([*TINY, "--logdir", run, "--stage", "vae"]) == 2
    assert "start with `--stage collect`" in capsys.readouterr().err
    assert not os.path.exists(run)
    assert main([*TINY, "--logdir", run, "--stage", "collect"]) == 0
    assert main(["train", "--resume", run, "--stage", "collect", "--threads", "2"]) == 0  # cores may change
    assert main(["train", "--resume", run, "--stage", "controller"]) == 2
    assert "needs the output of stage mdnrnn" in capsys.readouterr().err
    for flag, value, message in (
        ("--vmc.temperature", "0", "temperature must be > 0"),
        ("--vmc.mixtures", "0", "mixtures must be >= 1"),
        ("--vmc.collect-hold", "0", "collect-hold must be >= 1"),
        ("--controller-in", "dreamland", "invalid choice"),
    ):
        code = main([*TINY, "--logdir", str(tmp_path / "x"), flag, value]) if flag != "--controller-in" else None
        if code is None:
            with pytest.raises(SystemExit):
                main([*TINY, "--logdir", str(tmp_path / "x"), flag, value])
        else:
            assert code == 2
        assert message in capsys.readouterr().err
    assert main(["train", "--agent", "vmc", "--env", "CartPole-v1", "--logdir", str(tmp_path / "y")]) == 2
    assert "--obs pixels" in capsys.readouterr().err


def test_vmc_learns_offline_from_a_dataset_without_stepping_an_env(tmp_path, monkeypatch, capsys):
    """--dataset --offline: V and M learn from the recorded episodes alone (no collect stage, no
    env made to train; the env is made only to evaluate the controller), and the run is then
    evaluated and dreamed like any other."""
    from worldmodels.vmc import stages

    data = str(tmp_path / "dodge.h5")
    assert main(["data", "collect", "--env", "wmtest/Dodge-v0", "--episodes", "6", "--out", data]) == 0

    def no_env(*args, **kwargs):
        raise AssertionError("an offline V/M/C run made an env to collect with")

    monkeypatch.setattr(stages, "make_vector_env", no_env)
    run = str(tmp_path / "run")
    args = [*TINY, "--vmc.generations", "1", "--logdir", run, "--no-finish", "--dataset", data]
    assert main([*args, "--offline", "--penalty", "1"]) == 2
    assert "MDN-RNN is one model" in capsys.readouterr().err
    assert main([*args, "--offline", "--controller-in", "real"]) == 2
    assert "--controller-in dream" in capsys.readouterr().err
    assert main([*args, "--offline"]) == 0
    out = capsys.readouterr().out
    assert "collect: none (--offline)" in out and "the dataset's episodes last" in out
    ckpt = checkpoint.load(tmp_path / "run" / checkpoint.NAME)
    counters = ckpt["counters"]
    assert counters["env_steps"] == 0 and counters["episodes"] == 0
    assert counters["vae_steps"] == 30 and counters["rnn_steps"] == 30 and counters["generation"] == 1
    assert len(ckpt["dream_starts"]) == 6  # one start per recorded episode
    assert not list((tmp_path / "run" / "replay").glob("chunk-*"))  # nothing collected, nothing written
    assert main(["eval", run, "--episodes", "1"]) == 0
    assert main(["dream", run, "--horizon", "5", "--episodes", "1"]) == 0
