"""A worldpolicy policy as LeRobot's `PreTrainedPolicy` (`worldpolicy.data.lerobot_policy`), run by LeRobot's own
factory, evaluation rollout and record loop's inference step on the real lerobot 0.4.4 (`.ci/extra-test-installs.sh`,
with the packages its modules import that `--no-deps` left out, `LEROBOT_NEEDS`; torchvision stood in for as
`tests/lerobot_import.py` says). GR00T's package is left empty by the adapter itself, as in a user's process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from lerobot_import import LEROBOT_NEEDS, import_lerobot

wl, factory, lerobot_eval, control_utils, policy_utils, processor, lerobot_dataset = import_lerobot(
    "worldpolicy.data.lerobot_policy", "lerobot.policies.factory", "lerobot.scripts.lerobot_eval",
    "lerobot.utils.control_utils", "lerobot.policies.utils", "lerobot.processor",
    "lerobot.datasets.lerobot_dataset", needs=LEROBOT_NEEDS)
torch = pytest.importorskip("torch")

H, W = 64, 64


def _batch(items: int = 1, task="push the block", **images):
    images = images or {"observation.image": torch.rand(items, 3, H, W)}
    return {**images, "observation.state": torch.rand(items, 2), "task": task}


class Recorder:
    """Wraps a worldpolicy policy: what each request of its `act_batch` calls asked, and the chunk it returned
    (`calls`, one per request), and how many requests each call held (`batches`)."""

    def __init__(self, policy):
        self.policy, self.calls, self.batches = policy, [], []
        self.chunk_size = policy.chunk_size

    def act_batch(self, requests):
        predictions = self.policy.act_batch(requests)
        self.batches.append(len(requests))
        self.calls += [(r.observation, r.prompt, {"state": r.state}, p) for r, p in zip(requests, predictions)]
        return predictions


@pytest.fixture
def recorded(policy):
    return Recorder(policy)


def _adapter(policy, **config):
    config.setdefault("checkpoint", "unused: the policy is given")
    return wl.WorldpolicyPolicy(wl.WorldpolicyConfig(device="cpu", **config), policy)


def test_select_action_runs_n_action_steps_of_each_chunk_then_asks_again(recorded):
    adapter = _adapter(recorded, n_action_steps=3)
    actions = [adapter.select_action(_batch()) for _ in range(7)]
    assert all(a.shape == (1, 2) and a.dtype == torch.float32 for a in actions)
    assert len(recorded.calls) == 3  # steps 0-2, 3-5, 6
    first = recorded.calls[0][3].actions
    np.testing.assert_allclose(torch.cat(actions[:3]).numpy(), first[:3], rtol=1e-6)
    np.testing.assert_allclose(actions[3].numpy()[0], recorded.calls[1][3].actions[0], rtol=1e-6)
    adapter.reset()
    adapter.select_action(_batch())
    assert len(recorded.calls) == 4  # the queue was dropped: a new chunk


def test_the_whole_chunk_runs_without_n_action_steps(recorded):
    adapter = _adapter(recorded)
    for _ in range(4):  # the fixture's chunks hold 4 steps
        adapter.select_action(_batch())
    assert len(recorded.calls) == 1
    adapter.select_action(_batch())
    assert len(recorded.calls) == 2


def test_the_batch_reads_as_the_observation_state_and_prompt(recorded):
    pixels = torch.randint(0, 256, (1, 3, H, W), dtype=torch.uint8)
    pixels[0, :, 0, 0] = torch.tensor([255, 0, 0])  # red
    image = pixels.float() / 255  # as LeRobot's rollout and record loop make them of the camera's uint8
    batch = _batch(task=["stack the cups"], **{"observation.images.top": image})
    chunk = _adapter(recorded, camera_keys={"observation.images.top": "observation/image"}).predict_action_chunk(batch)
    assert chunk.shape == (1, 4, 2) and chunk.dtype == torch.float32
    observation, prompt, kwargs, _ = recorded.calls[0]
    assert list(observation) == ["observation/image"] and observation["observation/image"].dtype == np.uint8
    assert observation["observation/image"].shape == (H, W, 3)
    assert observation["observation/image"][0, 0].tolist() == [255, 0, 0]
    np.testing.assert_array_equal(observation["observation/image"], pixels[0].permute(1, 2, 0).numpy())  # exact
    assert prompt == "stack the cups"
    np.testing.assert_allclose(kwargs["state"], batch["observation.state"][0].double().numpy())


def test_the_config_task_stands_in_for_an_empty_one(recorded):
    adapter = _adapter(recorded, task="reach the cube")
    adapter.predict_action_chunk(_batch(2, task=["", "push it"]))
    assert [call[1] for call in recorded.calls] == ["reach the cube", "push it"]


def test_each_item_of_a_batch_is_its_own_request(recorded):
    batch = _batch(3, task=["a", "b", "c"])
    actions = _adapter(recorded, n_action_steps=2).select_action(batch)
    assert actions.shape == (3, 2)
    assert [call[1] for call in recorded.calls] == ["a", "b", "c"]
    assert recorded.batches == [3]  # one call: the items share the model's forward passes
    for i, call in enumerate(recorded.calls):
        np.testing.assert_allclose(actions[i].numpy(), call[3].actions[0], rtol=1e-6)


def test_action_names_order_the_chunk_columns_and_a_missing_one_is_named(recorded):
    chunk = _adapter(recorded, action_names=["y", "x"]).predict_action_chunk(_batch())
    np.testing.assert_allclose(chunk[0].numpy(), recorded.calls[0][3].actions[:, ::-1], rtol=1e-6)
    with pytest.raises(KeyError, match=r"action_names \['z'\] are not columns of the policy's chunks, which are "
                                       r"\['x', 'y'\]"):
        _adapter(recorded, action_names=["x", "z"]).predict_action_chunk(_batch())


def test_action_names_come_from_the_dataset_metadata_when_the_config_leaves_them_out(recorded):
    meta = SimpleNamespace(features={"action": {"names": ["y", "x"]}})  # LeRobotDatasetMetadata's features
    adapter = wl.WorldpolicyPolicy(wl.WorldpolicyConfig(checkpoint="x", device="cpu"), recorded, dataset_meta=meta)
    assert adapter.action_names == ["y", "x"]


@pytest.mark.parametrize(("config", "message"), [
    ({}, "checkpoint=None, server=None: name one of them"),
    ({"checkpoint": "a", "server": "ws://h:1"}, "name one of them"),
    ({"checkpoint": "a", "api_key_env": "KEY"}, "api_key_env='KEY': a key is sent to a server"),
    ({"checkpoint": "a", "n_action_steps": 0}, r"n_action_steps=0: accepted: an int >= 1"),
    ({"checkpoint": "a", "n_action_steps": True}, r"n_action_steps=True"),
    ({"checkpoint": "a", "camera_keys": {"observation.images.top": 3}}, "camera_keys="),
    ({"checkpoint": "a", "action_names": []}, r"action_names=\[\]: accepted: a non-empty list"),
    ({"checkpoint": "a", "action_names": "xy"}, r"action_names='xy'"),
    ({"checkpoint": "a", "task": " "}, r"task=' ': accepted: a task description"),
])
def test_a_bad_config_is_refused_naming_the_field(config, message):
    with pytest.raises(ValueError, match=message):
        wl.WorldpolicyConfig(device="cpu", **config)


def test_bad_batches_and_options_are_refused_clearly(recorded):
    adapter = _adapter(recorded)
    with pytest.raises(KeyError, match=r"batch has no 'observation.state' or image"):
        adapter.select_action({"task": "x"})
    with pytest.raises(ValueError, match=r"batch\['task'\] is None and the config names no task; set "):
        adapter.select_action({k: v for k, v in _batch().items() if k != "task"})
    with pytest.raises(ValueError, match=r"batch\['task'\] is \[3\]; accepted: the task as a string"):
        adapter.select_action(_batch(task=[3]))
    with pytest.raises(ValueError, match=r"accepted: \[3, H, W\]"):
        adapter.select_action(_batch(**{"observation.image": torch.rand(1, H, W, 3)}))
    with pytest.raises(ValueError, match="disagree on the batch size"):
        adapter.select_action({**_batch(2), "observation.state": torch.rand(1, 2)})
    with pytest.raises(KeyError, match=r"camera_keys names \['observation.images.side'\]"):
        _adapter(recorded, camera_keys={"observation.images.side": "observation/image"}).select_action(_batch())
    with pytest.raises(ValueError, match="noise: a worldpolicy policy draws its own"):
        adapter.predict_action_chunk(_batch(), noise=torch.zeros(1))
    with pytest.raises(ValueError, match=r"batch\['task'\] has 1 entries for a batch of 2 items; accepted: one task"):
        adapter.select_action(_batch(2, task=["a"]))  # not the config's task (or none) for the second item
    with pytest.raises(ValueError, match=r"batch\['task'\] has 3 entries for a batch of 2 items"):
        wl.lerobot_observation(_batch(2, task=["a", "b", "c"]), 0)
    assert not recorded.calls  # each refused before a request


def test_n_action_steps_over_the_chunk_is_refused_when_the_policy_is_opened(recorded, monkeypatch):
    with pytest.raises(ValueError, match=r"n_action_steps=9: the policy's chunks hold 4 steps \(its chunk_size\); "
                                         r"accepted: 1 to 4, or None"):
        _adapter(recorded, n_action_steps=9)
    assert not recorded.calls  # before any inference
    assert _adapter(recorded, n_action_steps=np.int64(4)).config.n_action_steps == 4  # a numpy integer is one
    opened = []

    class Served:  # what `_open` builds for server=: closed again by the refusal
        chunk_size, closed = 4, False

        def __init__(self, url, api_key=None, embodiment=None):
            opened.append(self)

        def close(self):
            self.closed = True

    monkeypatch.setattr("worldpolicy.serving.client.RemotePolicy", Served)
    with pytest.raises(ValueError, match=r"n_action_steps=5: the policy's chunks hold 4 steps"):
        wl.WorldpolicyPolicy(wl.WorldpolicyConfig(server="ws://127.0.0.1:9", n_action_steps=5, device="cpu"))
    assert [p.closed for p in opened] == [True]


def test_a_server_announcing_no_chunk_size_has_n_action_steps_checked_on_its_first_chunk(recorded):
    recorded.chunk_size = None  # openpi's server announces none
    adapter = _adapter(recorded, n_action_steps=9)
    with pytest.raises(ValueError, match=r"n_action_steps=9: the policy's chunks hold 4 steps"):
        adapter.select_action(_batch())
    assert len(recorded.calls) == 1  # the chunk that said it


def test_training_through_lerobot_is_refused(recorded):
    adapter = _adapter(recorded)
    for call in (lambda: adapter.forward(_batch()), adapter.get_optim_params, adapter.config.get_optimizer_preset):
        with pytest.raises(NotImplementedError, match="train it with `worldpolicy train`"):
            call()


def test_an_api_key_is_read_from_the_named_variable_else_the_command_lines_default(monkeypatch):
    sent = []

    class Served:  # what `_open` builds for server=: the key it was given
        chunk_size = 4

        def __init__(self, url, api_key=None, embodiment=None):
            sent.append(api_key)

    monkeypatch.setattr("worldpolicy.serving.client.RemotePolicy", Served)
    monkeypatch.setenv("WL_TEST_KEY", "s3cret-key-123")
    monkeypatch.setenv("WORLDPOLICY_API_KEY", "other-key-456")
    for named in ("WL_TEST_KEY", None):
        wl.WorldpolicyPolicy(wl.WorldpolicyConfig(server="ws://127.0.0.1:9", api_key_env=named, device="cpu"))
    monkeypatch.delenv("WORLDPOLICY_API_KEY")
    wl.WorldpolicyPolicy(wl.WorldpolicyConfig(server="ws://127.0.0.1:9", device="cpu"))  # a server without a key
    assert sent == ["s3cret-key-123", "other-key-456", None]
    monkeypatch.setenv("WL_TEST_KEY", "")
    with pytest.raises(ValueError, match="api_key_env='WL_TEST_KEY': that environment variable is unset or empty"):
        wl.WorldpolicyPolicy(wl.WorldpolicyConfig(server="ws://127.0.0.1:9", api_key_env="WL_TEST_KEY", device="cpu"))
    assert len(sent) == 3  # refused before connecting
    from worldpolicy import cli, serving

    assert cli.API_KEY_ENV is serving.API_KEY_ENV == "WORLDPOLICY_API_KEY"  # one name, the command lines' too


def test_lerobot_factory_builds_it_from_the_config_and_saves_and_loads_it(tiny, tmp_path):
    config = factory.make_policy_config("worldpolicy", checkpoint=str(tiny), embodiment="pusht", device="cpu",
                                        n_action_steps=2)
    assert isinstance(config, wl.WorldpolicyConfig) and config.type == "worldpolicy"
    assert factory.get_policy_class("worldpolicy") is wl.WorldpolicyPolicy
    pre, post = factory.make_pre_post_processors(config)
    adapter = wl.WorldpolicyPolicy(config)
    adapter.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json"]
    loaded = wl.WorldpolicyPolicy.from_pretrained(tmp_path / "saved")
    assert (loaded.config.checkpoint, loaded.config.n_action_steps) == (str(tiny), 2)
    action = post(loaded.select_action(pre(_batch())))
    assert action.shape == (1, 2)
    adapter.close()
    loaded.close()


def test_lerobot_make_policy_builds_it_for_a_dataset_in_its_action_order(tiny, tmp_path):
    """`make_policy(config, ds_meta=...)`: the features LeRobot reads from the dataset, and the dataset's action names
    (here not the chunk's order) as the order of the actions."""
    from worldpolicy.data import LeRobotDatasetWriter

    features = {"action": {"dtype": "float32", "shape": [2], "names": ["y", "x"]},
                "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                "observation.image": {"dtype": "video", "shape": [H, W, 3]}}
    with LeRobotDatasetWriter(tmp_path / "ds", fps=10, robot_type="pusht", features=features) as writer:
        writer.add_episode(frames={"action": np.zeros((3, 2), np.float32),
                                   "observation.state": np.zeros((3, 2), np.float32)},
                           videos={"observation.image": np.zeros((3, H, W, 3), np.uint8)}, task="push the T")
    meta = lerobot_dataset.LeRobotDatasetMetadata("local/ds", root=tmp_path / "ds")
    config = factory.make_policy_config("worldpolicy", checkpoint=str(tiny), embodiment="pusht", device="cpu")
    adapter = factory.make_policy(config, ds_meta=meta)
    loaded = adapter.policy
    try:
        assert isinstance(adapter, wl.WorldpolicyPolicy) and adapter.action_names == ["y", "x"]
        assert config.output_features["action"].shape == (2,)
        adapter.policy = recorded = Recorder(loaded)
        chunk = adapter.predict_action_chunk(_batch())
        np.testing.assert_allclose(chunk[0].numpy(), recorded.calls[0][3].actions[:, ::-1], rtol=1e-6)
    finally:
        loaded.close()


def test_lerobot_record_loops_inference_step_runs_it(recorded):
    """`record_loop` asks `predict_action` for each step's action (numpy HWC uint8 frames and the state, one task) and
    names its values by the dataset's action names (`make_robot_action`): the adapter's are in that order."""
    features = {"action": {"dtype": "float32", "shape": (2,), "names": ["y", "x"]}}
    adapter = wl.WorldpolicyPolicy(wl.WorldpolicyConfig(checkpoint="x", device="cpu", n_action_steps=2), recorded,
                                   dataset_meta=SimpleNamespace(features=features))
    pre, post = wl.make_worldpolicy_pre_post_processors(adapter.config)
    observation = {"observation.image": np.zeros((H, W, 3), np.uint8), "observation.state": np.zeros(2, np.float32)}
    sent = []
    for _ in range(3):
        action = control_utils.predict_action(observation, adapter, torch.device("cpu"), pre, post, use_amp=False,
                                              task="push the block")
        sent.append(policy_utils.make_robot_action(action, features))
    assert len(recorded.calls) == 2 and recorded.calls[0][1] == "push the block"
    first = recorded.calls[0][3]
    assert first.columns == ["x", "y"]
    assert sent[1] == pytest.approx({"y": first.actions[1, 1], "x": first.actions[1, 0]}, rel=1e-6)


def test_a_remote_policy_behind_the_adapter(policy):
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    thread = ServerThread(PolicyServer(policy, ServerConfig(host="127.0.0.1", port=0))).start()
    try:
        config = wl.WorldpolicyConfig(server=thread.url, device="cpu", n_action_steps=4,
                                      action_names=["y", "x"])
        adapter = wl.WorldpolicyPolicy(config)
        actions = torch.stack([adapter.select_action(_batch(2, task=["a", "b"])) for _ in range(4)])
        assert actions.shape == (4, 2, 2) and actions.dtype == torch.float32  # steps, items, ["y", "x"]
        assert np.isfinite(actions.numpy()).all()
        adapter.close()
    finally:
        thread.stop()


def test_lerobot_eval_rollout_runs_it_on_the_sim_env(tiny):
    """LeRobot's own evaluation rollout (`lerobot_eval.rollout`) on the tabletop env in LeRobot's observation form.
    The rollout looks for the env's `task_description` with `hasattr` on the env `gym.make` wrapped, which gymnasium
    1.x wrappers do not forward: it sends "" and the config's task is the prompt."""
    pytest.importorskip("mujoco", reason="the sim extra")
    import gymnasium as gym

    import worldpolicy.sim  # noqa: F401  (registers the env ids)
    from worldpolicy.sim.registration import ENV_IDS

    # the tiny checkpoint's random weights act out of range (a gripper at -4): clipped to the action space
    env = gym.vector.SyncVectorEnv([lambda: gym.wrappers.ClipAction(gym.make(
        ENV_IDS["reach"], obs_type="pixels_agent_pos", image_size=(H, W), max_episode_steps=3))])
    config = wl.WorldpolicyConfig(checkpoint=str(tiny), embodiment="droid", device="cpu", n_action_steps=2,
                                task="reach the red cube")
    adapter = wl.WorldpolicyPolicy.from_pretrained("unused", config=config)
    pre, post = wl.make_worldpolicy_pre_post_processors(config)
    env_pre, env_post = processor.PolicyProcessorPipeline(), processor.PolicyProcessorPipeline()  # an env's default
    try:
        result = lerobot_eval.rollout(env, adapter, env_pre, env_post, pre, post, seeds=[0])
    finally:
        env.close()
        adapter.close()
    assert result["action"].shape == (1, 3, 8)
    assert torch.isfinite(result["action"]).all()


# A fresh process imports the adapter as a user's does (torchvision stood in for only where it is absent)
_FRESH = """
import logging, sys
sys.path.insert(0, sys.argv[1])
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
from lerobot_import import LEROBOT_NEEDS, import_lerobot
wl, factory, lerobot_eval = import_lerobot("worldpolicy.data.lerobot_policy", "lerobot.policies.factory",
                                           "lerobot.scripts.lerobot_eval", needs=LEROBOT_NEEDS)
wl._stand_in_for_groot()  # again: already in place, no second warning
assert factory.make_policy_config("act").type == "act"
assert factory.make_policy_config("groot").type == "groot"  # its config loads from the package's folder
assert factory.get_policy_class("worldpolicy") is wl.WorldpolicyPolicy
try:
    factory.get_policy_class("groot")
except TypeError as exc:
    print("groot:", exc)
"""


def test_the_adapter_imports_lerobot_leaving_groot_empty_with_one_warning():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_FRESH), str(Path(__file__).parents[1])],
                         capture_output=True, text=True, check=True)
    warnings = [line for line in out.stderr.splitlines() if "GR00T" in line]
    assert len(warnings) == 1, out.stderr
    assert warnings[0].startswith("WARNING worldpolicy.data.lerobot_policy: lerobot's GR00T policy is unavailable")
    # the reason the stand-in is there: lerobot's own GR00T model does not define beside transformers 5
    assert "non-default argument 'backbone_cfg' follows default argument" in out.stdout, out.stdout


def test_groot_is_left_alone_where_lerobot_would_import_it(monkeypatch, caplog):
    monkeypatch.delitem(sys.modules, "lerobot.policies")
    monkeypatch.delitem(sys.modules, wl.GROOT)
    for installed in (wl.Version("4.57.6"), None):  # lerobot 0.4's own pin (< 5); none (lerobot's extra, left out)
        monkeypatch.setattr(wl, "_transformers_version", lambda installed=installed: installed)
        wl._stand_in_for_groot()
        assert wl.GROOT not in sys.modules and not caplog.records
    monkeypatch.undo()
    monkeypatch.delitem(sys.modules, "lerobot.policies")
    monkeypatch.delitem(sys.modules, wl.GROOT)
    monkeypatch.setattr(wl, "lerobot", SimpleNamespace(__version__="0.5.0", __path__=wl.lerobot.__path__))
    wl._stand_in_for_groot()  # not a release known to break there
    assert wl.GROOT not in sys.modules and not caplog.records
    monkeypatch.undo()
    wl._stand_in_for_groot()  # lerobot.policies is imported: nothing to do
    assert not caplog.records
    assert "configuration_groot" in vars(sys.modules[wl.GROOT])  # the adapter's stand-in, its config loaded from it
    assert not hasattr(sys.modules[wl.GROOT], "GrootPolicy")


def test_transformers_version_is_read_without_importing_it(monkeypatch):
    import transformers

    assert wl._transformers_version() == wl.Version(transformers.__version__)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as where it is not installed
    assert wl._transformers_version() is None
