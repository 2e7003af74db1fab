"""The robot side of a served worldpolicy policy in LeRobot: the plugin distribution
(`integrations/lerobot_policy_worldpolicy`) found by lerobot's own plugin discovery, `lerobot-record`'s command line
parsed to our config, and a batch run against a loopback server, in a process shaped like a robot's LeRobot env:
transformers absent (lerobot's own extra, pinned < 5) and worldpolicy's engine absent; lerobot imports diffusers (its
own dependency, for its GR00T and diffusion policies), worldpolicy's code may not. On the real lerobot 0.4.4
(`.ci/extra-test-installs.sh`; torchvision stood in for as `tests/lerobot_import.py` says)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from lerobot_import import LEROBOT_NEEDS, import_lerobot

RECORD_NEEDS = (*LEROBOT_NEEDS, "cv2")  # lerobot-record's module imports its OpenCV camera
import_lerobot(needs=RECORD_NEEDS)  # skips this module without lerobot 0.4.4 and the packages lerobot-record imports

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "integrations" / "lerobot_policy_worldpolicy"
# What worldpolicy's own modules may import on the robot side beyond the standard library: the client's packages
# (docs/serving.md "In LeRobot" names them for the robot's env) and lerobot's own (lerobot, torch, packaging)
ROBOT_SIDE = {"numpy", "msgpack", "websockets", "lerobot", "torch", "packaging"}

_ROBOT = """
import builtins, importlib.util, json, sys
import numpy as np
tests, site, url = sys.argv[1:]
sys.path[:0] = [tests, site]
sys.modules["transformers"] = sys.modules["worldpolicy.engine"] = None  # not in this env
MODEL_STACK = ("diffusers", "transformers", "worldpolicy.engine")
imported, refused = set(), []  # the top-level packages worldpolicy's modules import; the model stack they tried
_import = builtins.__import__

def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    target = importlib.util.resolve_name("." * level + name, globals["__package__"]) if level else name
    if importer.startswith("worldpolicy") or importer == "lerobot_policy_worldpolicy":
        if target.startswith(MODEL_STACK):
            refused.append(f"{importer} imports {target}")  # said even where the ImportError is caught
            raise ImportError(f"{importer} imports {target}, which the robot side must not need")
        if target.split(".")[0] not in (*sys.stdlib_module_names, "worldpolicy"):
            imported.add(target.split(".")[0])
    return _import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded
from lerobot_import import import_lerobot

# lerobot-record's module first, then its main's plugin discovery, as the command does
record, parser, import_utils, factory, control_utils = import_lerobot(
    "lerobot.scripts.lerobot_record", "lerobot.configs.parser", "lerobot.utils.import_utils",
    "lerobot.policies.factory", "lerobot.utils.control_utils")
assert "worldpolicy" not in factory.PreTrainedConfig.get_known_choices()
import_utils.register_third_party_plugins()
made = factory.make_policy_config("worldpolicy", server=url, embodiment="pusht", device="cpu")

def parse(cfg: record.RecordConfig):
    return cfg

# docs/serving.md's lerobot-record line, the policy's numbers the test server's
sys.argv = ["lerobot-record", "--robot.type=so101_follower", "--robot.port=/dev/ttyACM0", "--robot.id=my_arm",
            "--robot.cameras={ front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}",
            "--dataset.repo_id=me/eval_worldpolicy", "--dataset.single_task=push the block",
            "--dataset.push_to_hub=false", "--policy.type=worldpolicy", f"--policy.server={url}",
            "--policy.n_action_steps=2", '--policy.camera_keys={"observation.images.front": "observation/image"}',
            "--policy.device=cpu", '--policy.action_names=["y", "x"]']
cfg = parser.wrap()(parse)()
policy = factory.get_policy_class(cfg.policy.type)(cfg.policy)
pre, post = factory.make_pre_post_processors(cfg.policy)
observation = {"observation.images.front": np.zeros((64, 64, 3), np.uint8),
               "observation.state": np.zeros(2, np.float32)}
actions = [control_utils.predict_action(observation, policy, control_utils.torch.device("cpu"), pre, post,
                                        use_amp=False, task=cfg.dataset.single_task, robot_type="so101_follower")
           for _ in range(3)]  # lerobot-record's record_loop, each step's inference
policy.close()
print(json.dumps({
    "made": f"{type(made).__module__}.{type(made).__name__}", "parsed": type(cfg.policy).__name__,
    "server": cfg.policy.server, "embodiment": cfg.policy.embodiment, "steps": cfg.policy.n_action_steps,
    "robot": [type(cfg.robot).__name__, cfg.robot.port, sorted(cfg.robot.cameras)],
    "actions": [a.tolist() for a in actions],
    "imported": sorted(imported), "refused": refused, "diffusers_by_lerobot": "diffusers" in sys.modules}))
"""


def test_lerobot_record_finds_the_plugin_and_runs_a_served_policy_without_the_model_stack(policy, tmp_path,
                                                                                         monkeypatch):
    from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread

    source = shutil.copytree(PLUGIN, tmp_path / "plugin")  # pip builds in the source folder: not the checkout's
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(tmp_path / "site"), str(source)], capture_output=True, text=True,
                             check=False)
    assert install.returncode == 0, install.stderr[-2000:]
    sent, act_batch = [], policy.act_batch  # (the requests, the predictions) of each call the server made

    def answered(requests, progress=None):
        sent.append((requests, act_batch(requests, progress)))
        return sent[-1][1]

    monkeypatch.setattr(policy, "act_batch", answered)
    thread = ServerThread(PolicyServer(policy, ServerConfig(host="127.0.0.1", port=0))).start()
    try:
        out = subprocess.run([sys.executable, "-c", textwrap.dedent(_ROBOT), str(ROOT / "tests"),
                              str(tmp_path / "site"), thread.url], capture_output=True, text=True, timeout=300,
                             check=False)
    finally:
        thread.stop()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "GR00T" not in out.stderr  # without transformers 5, lerobot's policies (GR00T's too) import as they are
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["made"] == "worldpolicy.data.lerobot_policy.WorldpolicyConfig"  # registered by the plugin's import
    assert (got["parsed"], got["server"], got["embodiment"], got["steps"], got["robot"]) == (
        "WorldpolicyConfig", thread.url, None, 2, ["SOFollowerRobotConfig", "/dev/ttyACM0", ["front"]])
    assert got["refused"] == [] and got["diffusers_by_lerobot"]  # lerobot's GR00T imported diffusers; we did not
    assert set(got["imported"]) <= ROBOT_SIDE, got["imported"]
    assert {"numpy", "msgpack", "websockets"} <= set(got["imported"])
    # three record-loop steps, chunks of 4 run 2 steps each: two requests reached the server, with the task; the
    # robot got steps 0 and 1 of the first chunk, then step 0 of the second, in action_names' order
    assert [[r.prompt for r in requests] for requests, _ in sent] == [["push the block"], ["push the block"]]
    (first,), (second,) = (predictions for _, predictions in sent)
    assert first.columns == ["x", "y"]
    expected = [first.actions[0, ::-1], first.actions[1, ::-1], second.actions[0, ::-1]]
    np.testing.assert_allclose(np.array(got["actions"]), np.array(expected)[:, None], rtol=1e-6)
