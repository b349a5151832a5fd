"""Datasets in and out: Minari and HDF5 round trips, a run's replay as episodes, recording any
policy, and every kind of bad dataset refused or skipped with a reason."""

import json

import h5py
import numpy as np
import pytest
from gymnasium import spaces

from worldmodels.cli import main
from worldmodels.data.datasets import dataset_setup, load_dataset, save_dataset
from worldmodels.data.episodes import Dataset, from_transitions, model_observation_space, to_transitions
from worldmodels.data.replay import ReplayStore
from worldmodels.data.replay_episodes import write_spaces
from worldmodels.errors import DatasetError
from worldmodels.run.record import Recording, record_dataset
from worldmodels.specs import ActionSpec, ObsSpec


def synthetic(discrete: bool, image: bool, episodes=3, seed=0) -> Dataset:
    """Episodes in the library's step layout with random contents, of lengths 4, 5, 6, ...; the
    last one truncated, the others terminated."""
    rng = np.random.default_rng(seed)
    obs_spec = ObsSpec(image=(8, 8, 3) if image else None, vector=5)
    action_space = spaces.Discrete(3) if discrete else spaces.Box(-2.0, 2.0, (2,), np.float32)
    out = []
    for i in range(episodes):
        n = 5 + i  # rows: n - 1 transitions
        if discrete:
            action = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
        else:
            action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        action[-1] = 0
        steps = {
            "vector": rng.normal(size=(n, 5)).astype(np.float32),
            "action": action,
            "reward": np.r_[0.0, rng.normal(size=n - 1)].astype(np.float32),
            "is_first": np.r_[True, np.zeros(n - 1, bool)],
            "is_terminal": np.r_[np.zeros(n - 1, bool), i < episodes - 1],
            "is_last": np.r_[np.zeros(n - 1, bool), True],
        }
        if image:
            steps["image"] = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        out.append(steps)
    return Dataset(out, model_observation_space(obs_spec), action_space, env_id="wmtest/Cue-v0", meta={"seed": seed})


def assert_same_episodes(a: Dataset, b: Dataset) -> None:
    assert len(a.episodes) == len(b.episodes)
    for x, y in zip(a.episodes, b.episodes):
        assert set(x) == set(y)
        for key in x:
            assert x[key].dtype == y[key].dtype, key
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.parametrize("fmt", ["hdf5", "minari"])
@pytest.mark.parametrize("discrete,image", [(True, True), (False, False)])
def test_round_trip_gives_identical_episodes(tmp_path, fmt, discrete, image):
    original = synthetic(discrete, image)
    out = save_dataset(original, tmp_path / ("data.h5" if fmt == "hdf5" else "data"))
    back = load_dataset(out)
    assert back.format == fmt and back.env_id == "wmtest/Cue-v0" and not back.skipped
    assert_same_episodes(original, back)
    assert back.obs_spec == original.obs_spec and back.action_spec == original.action_spec
    # is_first where each episode begins, the last row of each the only last one; terminal as recorded
    assert [bool(ep["is_terminal"][-1]) for ep in back.episodes] == [True, True, False]
    with pytest.raises(DatasetError, match="already exists"):
        save_dataset(original, out)


def test_transitions_keep_time_alignment():
    """reward_t arrives with obs_t: transition t's reward is row t + 1's; action_t leaves obs_t."""
    steps = synthetic(True, False).episodes[0]
    moves = to_transitions(steps, spaces.Discrete(3))
    assert len(moves["observations"]["vector"]) == len(moves["rewards"]) + 1
    np.testing.assert_array_equal(moves["rewards"], steps["reward"][1:])
    np.testing.assert_array_equal(moves["actions"], steps["action"][:-1].argmax(-1))
    back = from_transitions(moves["observations"], **{k: moves[k] for k in moves if k != "observations"},
                            action_space=spaces.Discrete(3))  # fmt: skip
    for key in steps:
        np.testing.assert_array_equal(back[key], steps[key])


def test_continuous_actions_are_stored_in_the_envs_units(tmp_path):
    original = synthetic(False, False)
    path = save_dataset(original, tmp_path / "d.h5")
    with h5py.File(path) as f:
        stored = f["episode_0/actions"][()]
    np.testing.assert_array_equal(stored, 2.0 * original.episodes[0]["action"][:-1])  # Box(-2, 2)


def test_replay_folder_reads_back_as_whole_episodes(tmp_path):
    """Two env streams, chunks cut mid-episode: the episodes come back whole and in order; the one
    still running when the replay ends is skipped and counted."""
    data = synthetic(True, False, episodes=4)  # 5, 6, 7 and 8 rows
    running = {k: v[:4] for k, v in data.episodes[3].items()}  # begun, never ended
    streams = [data.episodes[:2], [data.episodes[2], running]]  # 11 rows each
    rows = [{k: np.concatenate([ep[k] for ep in eps]) for k in eps[0]} for eps in streams]
    store = ReplayStore(tmp_path / "replay", capacity=1000, streams=2, chunk=3)
    for t in range(11):
        store.add({k: np.stack([r[k][t] for r in rows]) for k in rows[0]})
    store.flush()
    write_spaces(tmp_path / "replay", observation_space=data.observation_space,
                 action_space=data.action_space, env_id="wmtest/Cue-v0", meta={})  # fmt: skip
    back = load_dataset(tmp_path / "replay")
    assert back.format == "replay" and back.env_id == "wmtest/Cue-v0"
    assert_same_episodes(Dataset(data.episodes[:3], data.observation_space, data.action_space), back)
    assert any("1 episode(s) not finished" in line for line in back.skipped), back.skipped


def test_a_damaged_replay_chunk_is_skipped_not_renamed(tmp_path):
    data = synthetic(True, False, episodes=3)
    store = ReplayStore(tmp_path / "replay", capacity=1000, streams=1, chunk=100)
    for ep in data.episodes:
        for t in range(len(ep["reward"])):
            store.add({k: ep[k][t][None] for k in ep})
    store.flush()
    write_spaces(tmp_path / "replay", observation_space=data.observation_space,
                 action_space=data.action_space, env_id="x", meta={})  # fmt: skip
    chunks = sorted((tmp_path / "replay").glob("chunk-*.npz"))
    assert len(chunks) == 3  # one per episode (a chunk ends at every episode end)
    chunks[1].write_bytes(b"not a zip file")
    back = load_dataset(tmp_path / "replay")
    assert len(back.episodes) == 2 and any(chunks[1].name in line for line in back.skipped)
    assert chunks[1].exists()  # exporting never changes the run


def test_damaged_episodes_are_skipped_and_named(tmp_path):
    path = save_dataset(synthetic(True, False, episodes=4), tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        del f["episode_1/rewards"]
        f["episode_1/rewards"] = np.zeros(2, np.float32)  # a length the other arrays disagree with
        rewards = f["episode_2/rewards"][()]
        rewards[0] = np.nan
        f["episode_2/rewards"][...] = rewards
        terminations = f["episode_3/terminations"][()]
        terminations[0] = True  # ends at its first step, yet goes on
        f["episode_3/terminations"][...] = terminations
    back = load_dataset(path)
    assert len(back.episodes) == 1
    reasons = "\n".join(back.skipped)
    assert "episode_1: its arrays disagree in length" in reasons
    assert "episode_2: its rewards hold 1 non-finite" in reasons
    assert "episode_3: it ends at transition 0" in reasons


def test_bad_datasets_are_refused_with_what_to_do(tmp_path):
    empty = Dataset([], model_observation_space(ObsSpec(vector=5)), spaces.Discrete(3))
    path = save_dataset(empty, tmp_path / "empty.h5")
    with pytest.raises(DatasetError, match="holds no usable episode"):
        load_dataset(path)
    assert load_dataset(path, allow_empty=True).episodes == []
    cut = tmp_path / "cut.h5"
    cut.write_bytes(save_dataset(synthetic(True, True), tmp_path / "whole.h5").read_bytes()[:3000])
    with pytest.raises(DatasetError, match="cut short"):
        load_dataset(cut)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(DatasetError, match="Nothing is downloaded"):
        load_dataset("minari:mujoco/hopper/medium-v0")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere" / "d.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["observations"] = np.zeros((3, 2))
    with pytest.raises(DatasetError, match="not a worldmodels episode file"):
        load_dataset(tmp_path / "plain.h5")


def test_a_dataset_that_does_not_fit_the_env_says_which_keys_differ():
    data = synthetic(True, True)
    with pytest.raises(DatasetError, match=r"image: the dataset has \(8, 8, 3\), --env X has none.*actions"):
        data.check_matches(ObsSpec(vector=5), ActionSpec(2, True), against="--env X")


def test_recording_a_policy_and_the_cli(tmp_path, capsys):
    rec = record_dataset(Recording(env="wmtest/Cue-v0", policy="held:3", episodes=4, seed=1))
    assert len(rec.episodes) == 4 and rec.steps == 40 and rec.meta["policy"] == "held:3"
    again = record_dataset(Recording(env="wmtest/Cue-v0", policy="held:3", episodes=4, seed=1))
    assert_same_episodes(rec, again)  # a seed names the same episodes
    out = tmp_path / "cue.h5"
    assert main(["data", "collect", "--env", "wmtest/Cue-v0", "--episodes", "3", "--out", str(out)]) == 0
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 4)[-1])
    assert info["episodes"] == 3 and info["steps"] == 30 and info["observations"] == {"vector": [2]}
    assert dataset_setup(out) == {"env": "wmtest/Cue-v0", "obs": "state", "image_size": 64, "action_repeat": 1}
    assert main(["data", "collect", "--env", "wmtest/Cue-v0", "--policy", "held:0", "--out", str(tmp_path / "x")]) == 2
    assert "held:K" in capsys.readouterr().err
    # A dataset's time step goes with it: its action repeat is a run's default, and a run that
    # steps otherwise is refused (a model of 2-step transitions is wrong about 1-step ones).
    twice = tmp_path / "cue-x2.h5"
    collect = ["data", "collect", "--env", "wmtest/Cue-v0", "--episodes", "2", "--action-repeat", "2"]
    assert main([*collect, "--out", str(twice)]) == 0
    assert dataset_setup(twice)["action_repeat"] == 2
    train = ["train", "--dataset", str(twice), "--offline", "--steps", "2", "--size", "XXS", "--no-finish"]
    assert main([*train, "--action-repeat", "1", "--logdir", str(tmp_path / "r1")]) == 2
    assert "recorded at --action-repeat 2" in capsys.readouterr().err
    from worldmodels.cli import _dataset_defaults

    assert _dataset_defaults({"dataset": str(twice)})["action_repeat"] == 2
    assert main(["data", "info", str(tmp_path / "nothing.h5")]) == 2


def test_a_minari_dataset_written_elsewhere_reads_through_the_env_adapters_split(tmp_path, monkeypatch):
    """Minari's own writer, the env's own spaces (a flat Box, as MuJoCo datasets have; a Dict with
    an image): observations reach the model as the env adapter would give them."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    rng = np.random.default_rng(0)
    box = spaces.Box(-np.inf, np.inf, (3,), np.float64)
    both = spaces.Dict({"camera": spaces.Box(0, 255, (12, 12, 3), np.uint8), "joints": box})
    action = spaces.Box(-1.0, 1.0, (2,), np.float32)
    for name, space in (("flat", box), ("camera", both)):
        episodes = []
        for i in range(2):
            n = 6 + i
            obs = rng.normal(size=(n + 1, 3))
            if name == "camera":
                obs = {"camera": rng.integers(0, 256, (n + 1, 12, 12, 3), dtype=np.uint8), "joints": obs}
            moves = dict(
                actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                rewards=rng.normal(size=n),
                terminations=np.r_[np.zeros(n - 1), 1].astype(bool),
                truncations=np.zeros(n, bool),
            )
            episodes.append(EpisodeBuffer(id=i, observations=obs, infos={}, **moves))
        about = dict(algorithm_name="x", author="x", author_email="x", code_permalink="x", description="x")
        with pytest.warns(UserWarning):  # Minari's advice to name an env spec
            minari.create_dataset_from_buffers(
                f"ext/{name}-v0", episodes, observation_space=space, action_space=action, **about
            )
    flat = load_dataset("minari:ext/flat-v0")  # an id in Minari's local root
    assert flat.obs_spec == ObsSpec(vector=3) and [len(ep["reward"]) for ep in flat.episodes] == [7, 8]
    assert flat.episodes[0]["vector"].dtype == np.float32
    camera = load_dataset(tmp_path / "ext" / "camera-v0", image_size=8)
    assert camera.obs_spec == ObsSpec(image=(8, 8, 3), vector=3)
    assert camera.episodes[1]["image"].shape == (8, 8, 8, 3)
