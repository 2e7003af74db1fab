"""The SDK's own MCP client against the server in-process: tool listing, predict/imagine/infer, structured errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from types import SimpleNamespace

import anyio
import jsonschema
import numpy as np
import pytest

pytest.importorskip("mcp", reason="agents extra not installed: pip install 'worldpolicy[agents]'")

from mcp.client import Client
from PIL import Image

from worldpolicy.agents.mcp_server import build_server
from worldpolicy.agents.toolbox import SIM_TIMING_FIELDS, ToolInputError
from worldpolicy.processing.video import read_video

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(toolbox):
    return build_server(toolbox)


def call(server, name: str, args: dict, progress: list | None = None):
    async def run():
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}

            async def on_progress(done, total, message):
                progress.append((done, total, message))

            result = await client.call_tool(name, args, progress_callback=on_progress if progress is not None else None)
            return tools[name], result

    return anyio.run(run)


def ok(server, name: str, args: dict, progress: list | None = None) -> dict:
    tool, result = call(server, name, args, progress)
    assert not result.is_error, result.content
    jsonschema.validate(result.structured_content, tool.output_schema)
    text = json.loads(result.content[0].text)  # the same result as text for clients without structured output
    # on one line, not the SDK's indent=2 (half as long again in the model's context)
    assert "\n" not in result.content[0].text, result.content[0].text[:200]
    assert {k: v for k, v in text.items() if k != "files"} == {
        k: v for k, v in result.structured_content.items() if k != "files"
    }
    return result.structured_content


def err(server, name: str, args: dict) -> dict:
    _, result = call(server, name, args)
    assert result.is_error
    return result.structured_content["error"]


def test_lists_tools_with_typed_schemas(server):
    async def run():
        async with Client(server) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    tools = anyio.run(run)
    assert set(tools) == {
        "list_embodiments",
        "list_checkpoints",
        "list_world_models",
        "predict_actions",
        "imagine_rollout",
        "infer_actions",
        "visualize_actions",
        "evaluate_in_sim",
        "evaluate_open_loop",
        "compare_sim_runs",
        "dream",
        "show_dataset",
    }
    predict = tools["predict_actions"]
    assert predict.input_schema["required"] == ["prompt"]
    assert "ctx" not in predict.input_schema["properties"]
    assert predict.input_schema["properties"]["seed"]["anyOf"][0]["type"] == "integer"
    # the ranges the arguments are checked against, in the schema and in words, so a model calls them right the
    # first time (were in the descriptions alone)
    properties = predict.input_schema["properties"]
    described = {name: properties[name]["description"] for name in ("seed", "steps", "guidance")}
    assert "[0, 2**63)" in described["seed"] and "[1, 100]" in described["steps"] and "[0, 50]" in described["guidance"]
    bounds = {(tool, name): (p.get("minimum"), p.get("maximum"), p.get("minItems"), p.get("maxItems"))
              for tool, t in tools.items() for name, p in t.input_schema["properties"].items()}
    assert bounds[("predict_actions", "seed")] == (0, 2**63 - 1, None, None)
    assert bounds[("predict_actions", "steps")] == bounds[("imagine_rollout", "steps")] == (1, 100, None, None)
    assert bounds[("predict_actions", "guidance")] == (0, 50, None, None)
    assert bounds[("evaluate_in_sim", "episodes")] == (1, 20, None, None)
    assert bounds[("evaluate_in_sim", "max_steps")] == (1, 1000, None, None)
    assert bounds[("infer_actions", "start_frame")] == (0, None, None, None)
    assert bounds[("dream", "chunks")] == (1, 32, None, None)
    assert bounds[("evaluate_open_loop", "chunks")] == (1, 512, None, None)
    assert bounds[("compare_sim_runs", "runs")] == (None, None, 2, 10)
    assert bounds[("show_dataset", "episodes")] == (None, None, 1, 20)
    sim = tools["evaluate_in_sim"].input_schema["properties"]
    assert "[1, 20]" in sim["episodes"]["description"] and "[1, 1000]" in sim["max_steps"]["description"]
    assert {"run_dir", "files", "actions", "columns", "units"} <= set(predict.output_schema["properties"])
    assert tools["evaluate_in_sim"].input_schema["properties"]["task"]["enum"] == ["reach", "push", "pick_place"]
    assert tools["list_embodiments"].annotations.read_only_hint is True
    assert tools["evaluate_open_loop"].input_schema["required"] == ["dataset"]
    # the modes `dataset eval --mode` takes, the library's one list (`results.MODES`)
    from worldpolicy.results import MODES as EVAL_MODES

    mode = tools["evaluate_open_loop"].input_schema["properties"]["mode"]
    assert mode["enum"] == list(EVAL_MODES) and mode["default"] == "policy"
    assert tools["compare_sim_runs"].input_schema["required"] == ["runs"]
    assert {"columns", "mae_normalized", "normalization", "episodes", "files"} <= \
        set(tools["evaluate_open_loop"].output_schema["properties"])
    assert {"runs", "pairs", "differences", "prompts", "reworded_seeds", "warnings"} <= set(
        tools["compare_sim_runs"].output_schema["properties"])
    pairs = tools["compare_sim_runs"].output_schema["properties"]["pairs"]["description"]
    assert "Holm-Bonferroni" in pairs and "not corrected" not in pairs  # as `compare_runs` adjusts them
    assert tools["dream"].input_schema["required"] == ["prompt", "chunks"]
    assert tools["show_dataset"].input_schema["required"] == ["dataset"]
    assert {"chunks", "rewards", "files", "video_frames"} <= set(tools["dream"].output_schema["properties"])
    # what a reward is, in the scorer's own words (`sim.progress.SCORER_REWARDS`), as `dream --help` says it
    from worldpolicy.sim.progress import SCORER_REWARDS

    assert SCORER_REWARDS["reach"] in tools["dream"].input_schema["properties"]["score"]["description"]
    assert SCORER_REWARDS["reach"] in tools["dream"].output_schema["properties"]["rewards"]["description"]
    assert {"summary", "episodes", "files"} <= set(tools["show_dataset"].output_schema["properties"])


def test_list_embodiments_and_checkpoints(server):
    emb = {e["key"]: e for e in ok(server, "list_embodiments", {})["embodiments"]}
    assert emb["droid/joint_pos"]["units"][:7] == ["rad"] * 7 and emb["droid/joint_pos"]["needs_state"]
    assert emb["bridge"]["columns"][-1] == "grasp"
    ckpts = ok(server, "list_checkpoints", {})
    assert [c["name"] for c in ckpts["checkpoints"]] == ["tiny"] and ckpts["max_loaded"] == 2


def test_file_arguments_say_where_files_may_be(server, toolbox, inputs_dir):
    """An agent learnt which folders the tools read, and that a relative path is taken from the first, only from a
    refused call's `accepted`: list_checkpoints names them, and every file argument points there."""
    roots = ok(server, "list_checkpoints", {})["input_roots"]
    assert roots == [str(r) for r in toolbox.config.input_roots] and roots[0] == str(inputs_dir.resolve())

    async def run():
        async with Client(server) as client:
            return {t.name: t.input_schema["properties"] for t in (await client.list_tools()).tools}

    tools = anyio.run(run)
    file_arguments = [("predict_actions", "image"), ("predict_actions", "images"), ("imagine_rollout", "actions_file"),
                      ("infer_actions", "video"), ("visualize_actions", "path"), ("dream", "image"),
                      ("evaluate_open_loop", "dataset"), ("show_dataset", "dataset"), ("compare_sim_runs", "runs")]
    for tool, argument in file_arguments:
        assert "input_roots" in tools[tool][argument]["description"], (tool, argument)
    # a relative path, as the description says, from the first root
    result = ok(server, "predict_actions", {"prompt": "pick up the block", "embodiment": "bridge", "image": "obs.png",
                                            "steps": 2, "seed": 0})
    assert result["actions"] and result["checkpoint"] == "tiny"


def test_predict_imagine_infer_round_trip(server, inputs_dir):
    progress: list = []
    pred = ok(
        server,
        "predict_actions",
        {
            "prompt": "pick up the block",
            "embodiment": "bridge",
            "image": str(inputs_dir / "obs.png"),
            "seed": 1,
            "steps": 2,
        },
        progress,
    )
    assert pred["mode"] == "policy" and pred["chunk_size"] == 4
    a = np.asarray(pred["actions"])
    assert a.shape == (4, 10) and np.all(np.isfinite(a))
    files = pred["files"]
    for key in ("actions", "settings", "report"):
        assert Path(files[key]).is_file()
    assert files["video"] is None  # not asked for
    assert sorted(Path(p).name for p in files["plots"]) == ["actions.png", "ee_path.png"]
    saved = json.loads(Path(files["actions"]).read_text())
    assert np.allclose(saved["actions"], a, atol=1e-5)
    # the fields actions.json (and `worldpolicy predict --json`) give, alike (`Prediction.to_json`)
    shared = ("mode", "embodiment", "columns", "units", "fps", "chunk_size", "video_frames")
    assert {k: pred[k] for k in shared} == {k: saved[k] for k in shared} and pred["seed"] == saved["settings"]["seed"]
    # the run keeps the image it started from, as predict does (its page showed only the imagined video)
    kept = Path(files["actions"]).parent / "observation" / "image.png"
    assert files["observation"] == [str(kept)]  # listed with the run's files, for an agent to look at
    assert np.array_equal(np.asarray(Image.open(kept)), np.asarray(Image.open(inputs_dir / "obs.png")))
    messages = [m for _, _, m in progress]
    assert messages[0].startswith("loading tiny") and "denoising step 2/2" in messages and messages[-1] == "done"

    fd = ok(
        server,
        "imagine_rollout",
        {
            "prompt": "pick up the block",
            "embodiment": "bridge",
            "image": str(inputs_dir / "obs.png"),
            "actions_file": files["actions"],
            "seed": 1,
            "steps": 2,
        },
    )
    assert fd["mode"] == "forward_dynamics" and fd["video_frames"] == 5
    frames, fps = read_video(fd["files"]["video"])
    assert frames.shape[0] == 5 and fps == pytest.approx(5.0)
    # forward dynamics echoes the conditioning actions
    assert np.allclose(fd["actions"], pred["actions"], atol=1e-4)
    assert fd["files"]["observation"] == [str(Path(fd["files"]["actions"]).parent / "observation" / "image.png")]
    assert all(Path(p).is_file() for p in fd["files"]["observation"])

    inv = ok(
        server,
        "infer_actions",
        {
            "prompt": "pick up the block",
            "embodiment": "bridge",
            "video": fd["files"]["video"],
            "seed": 1,
            "steps": 2,
            "animate": True,
        },
    )
    assert inv["mode"] == "inverse_dynamics" and np.asarray(inv["actions"]).shape == (4, 10)
    assert not (Path(inv["files"]["actions"]).parent / "observation").exists()  # given a clip, not one image
    assert inv["files"]["observation"] == []
    anim, _ = read_video(inv["files"]["animation"])
    assert anim.shape[0] == 4  # no rollout video in an inverse run: one frame per action step

    tool, shown = call(
        server, "visualize_actions", {"path": pred["run_dir"], "video": fd["files"]["video"], "show_plots": True}
    )
    assert not shown.is_error
    vis = shown.structured_content
    jsonschema.validate(vis, tool.output_schema)
    assert Path(vis["animation"]).is_file() and Path(vis["report"]).is_file()
    assert read_video(vis["animation"])[0].shape[0] == 5
    # the plots come back as images too, for agents that look
    images = [c for c in shown.content if c.type == "image"]
    assert len(images) == 2 and all(c.mime_type == "image/png" for c in images)
    assert base64.b64decode(images[0].data) == Path(vis["plots"][0]).read_bytes()


@pytest.mark.parametrize(
    "tool, args, parameter, fragment",
    [
        (
            "predict_actions",
            {"prompt": "go", "embodiment": "marsrover", "image": "obs.png"},
            "embodiment",
            "unknown embodiment",
        ),
        (
            "predict_actions",
            {"prompt": "go", "embodiment": "bridge", "image": "missing.png"},
            "image",
            "does not exist",
        ),
        ("predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "notes.txt"}, "image", "unsupported"),
        ("predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "/etc/hostname"}, "image", "outside"),
        ("predict_actions", {"prompt": " ", "embodiment": "bridge", "image": "obs.png"}, "prompt", "non-empty"),
        ("predict_actions", {"prompt": "go", "embodiment": "bridge"}, "image", "exactly one"),
        ("predict_actions", {"prompt": "go", "embodiment": "droid", "image": "obs.png"}, "state", "state"),
        (
            "predict_actions",
            {"prompt": "go", "embodiment": "bridge", "image": "obs.png", "checkpoint": "nope"},
            "checkpoint",
            "not a checkpoint",
        ),
        ("predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "obs.png", "steps": 0}, "steps", "[1,"),
        (
            "imagine_rollout",
            {"prompt": "go", "embodiment": "bridge", "image": "obs.png", "actions": [[0.0] * 7] * 4},
            "actions",
            "wrong action width",
        ),
        (
            "imagine_rollout",
            {"prompt": "go", "embodiment": "bridge", "image": "obs.png", "actions": [[0.0] * 10, [1.0]]},
            "actions",
            "equal-length",
        ),
        ("infer_actions", {"prompt": "go", "embodiment": "bridge", "video": "gone.mp4"}, "video", "does not exist"),
        # a state-conditioned embodiment's state is checked before the model loads, as predict_actions checks it
        ("infer_actions", {"prompt": "go", "embodiment": "droid", "video": "clip.mp4", "state": [0.0] * 7}, "state",
         "has 7 values"),
        ("infer_actions", {"prompt": "go", "embodiment": "droid", "video": "clip.mp4"}, "state", "conditions on"),
        ("predict_actions", {"prompt": "go", "embodiment": "droid", "image": "obs.png", "state": [0.0] * 7}, "state",
         "has 7 values"),
        # frames too small for the model are refused before it loads, naming the argument, as a corrupt file is
        ("predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "tiny.png"}, "image", "is 8x8 pixels"),
        ("infer_actions", {"prompt": "go", "embodiment": "bridge", "video": "tiny.mp4"}, "video", "is 8x8 pixels"),
        (
            "predict_actions",
            {"prompt": "go", "embodiment": "droid/joint_pos", "state": [0.0] * 8,
             "images": {"observation/wrist_image_left": "tiny.png", "observation/exterior_image_1_left": "obs.png",
                        "observation/exterior_image_2_left": "obs.png"}},
            "images[observation/wrist_image_left]",
            "is 8x8 pixels",
        ),
        ("visualize_actions", {"path": "nowhere"}, "path", "does not exist"),
        ("visualize_actions", {"path": "/etc"}, "path", "outside"),  # a folder: its actions.json is looked for
        ("predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "corrupt.png"}, "image", "cannot read"),
        (
            "predict_actions",
            {"prompt": "go", "embodiment": "droid/joint_pos", "state": [0.0] * 8,
             "images": {"observation/wrist_image_left": "corrupt.png", "observation/exterior_image_1_left": "obs.png",
                        "observation/exterior_image_2_left": "obs.png"}},
            "images[observation/wrist_image_left]",
            "cannot read",
        ),
        ("evaluate_in_sim", {"policy": "nonexistent"}, "policy", "not a checkpoint"),
        ("evaluate_in_sim", {"perturb": "light=9"}, "perturb", "'light=9': light takes a number of 0.1 to 3"),
        ("evaluate_in_sim", {"perturb": "fog"}, "perturb", "unknown perturbation 'fog'"),
        # the chunk timing, checked as `worldpolicy sim` checks --strategy/--latency/--rtc, before any weights load
        ("evaluate_in_sim", {"rtc": True}, "rtc", "only the 'async' strategy does; got 'execute'"),
        ("evaluate_in_sim", {"strategy": "async", "rtc": True}, "rtc", "policy scripted has no model to condition"),
        ("evaluate_in_sim", {"latency": -5}, "latency", "expected milliseconds, a finite number >= 0"),
        ("evaluate_in_sim", {"latency": 5000, "max_steps": 20}, "latency", "at or past the 20-step limit"),
        ("evaluate_in_sim", {"policy": "tiny", "strategy": "ensemble", "latency": 300}, "latency",
         "at or past the policy's 4-step chunk: with strategy=ensemble every reply lands past its whole chunk"),
        # as `worldpolicy sim --num-envs` checks it, before any weights load
        ("evaluate_in_sim", {"num_envs": 2}, "num_envs", "policy=scripted makes none"),
        ("evaluate_in_sim", {"policy": "tiny", "num_envs": 0}, "num_envs", "expected an int >= 1"),
        ("evaluate_in_sim", {"policy": "random", "strategy": "async", "num_envs": 2}, "num_envs",
         "policy=random makes none"),
        ("predict_actions", {"prompt": "go", "image": "obs.png", "checkpoint": "nope"}, "checkpoint", "not a checkpoint"),
        # best-of-N planning, as `worldpolicy sim --plan/--plan-scorer` checks it (`sim.progress.check_plan`), and the
        # scorer against the checkpoint's cameras (tiny's: droid's composite, which reach cannot read), before a load
        ("evaluate_in_sim", {"policy": "tiny", "plan": 1}, "plan", "from 2 to 16"),
        ("evaluate_in_sim", {"plan": 2}, "plan", "policy='scripted' has none to plan with"),
        ("evaluate_in_sim", {"policy": "tiny", "plan_scorer": "reach"}, "plan_scorer", "no plan= is given"),
        ("evaluate_in_sim", {"policy": "tiny", "plan": 2, "num_envs": 2}, "num_envs", "accepted with a planner"),
        ("evaluate_in_sim", {"policy": "tiny", "plan": 2}, "plan_scorer", "as 'droid_wrist_top'"),
    ],
)
def test_bad_inputs_are_structured_errors(server, toolbox, inputs_dir, tool, args, parameter, fragment):
    args = {
        k: (str(inputs_dir / v) if k in ("image", "video", "path") and not v.startswith("/") else v)
        for k, v in args.items()
    }
    loaded_before = list(toolbox._policies)
    error = err(server, tool, args)
    assert error["type"] == "invalid_input" and error["parameter"] == parameter, error
    assert fragment in error["message"], error
    assert not error["message"].startswith(f"{parameter}: {parameter}:"), error  # the parameter is named once
    if isinstance(args.get(parameter), str):
        assert error.get("given") in (None, args[parameter]), error  # what the caller wrote
    assert list(toolbox._policies) == loaded_before  # rejected before any checkpoint was loaded


@pytest.mark.parametrize(("name", "value", "accepted"), [
    ("seed", -1, "an integer in [0, 2**63)"), ("steps", 0, "an integer in [1, 100]"),
    ("guidance", 99, "a number in [0, 50]"),
])
def test_a_sampling_argument_out_of_range_says_what_is_accepted(server, inputs_dir, name, value, accepted):
    """The ranges were in the message alone: an agent reading `accepted`, as the other arguments give it, found none."""
    error = err(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "obs.png", name: value})
    assert (error["parameter"], error["given"], error["accepted"]) == (name, value, accepted), error
    assert error["message"] == f"{name}: must be {accepted}", error


@pytest.mark.parametrize(("tool", "args", "name", "value", "accepted"), [
    ("evaluate_in_sim", {}, "episodes", 0, "an integer in [1, 20]"),
    ("evaluate_in_sim", {}, "max_steps", 0, "an integer in [1, 1000]"),
    ("evaluate_in_sim", {}, "seed", -1, "an integer in [0, 2**63)"),
    ("evaluate_open_loop", {"dataset": "pusht_ds", "checkpoint": "tiny"}, "chunks", 513, "an integer in [1, 512]"),
    ("infer_actions", {"prompt": "go", "embodiment": "bridge", "video": "clip.mp4"}, "start_frame", -1,
     "an integer >= 0 (a frame of the clip, from 0)"),
    ("dream", {"prompt": "go", "checkpoint": "tiny", "image": "obs.png"}, "chunks", 0, "an integer in [1, 32]"),
])
def test_every_range_refusal_says_what_is_accepted(server, inputs_dir, pusht_dataset, tool, args, name, value,
                                                   accepted):
    """The sampling arguments said their range as `accepted`; the same refusals of the other tools' numbers and
    flags (episodes, chunks, start_frame...) said it in the message alone."""
    args = {k: str(inputs_dir / v) if k in ("image", "video", "dataset") else v for k, v in args.items()}
    error = err(server, tool, {**args, name: value})
    assert (error["parameter"], error["given"], error["accepted"]) == (name, value, accepted), error
    assert error["message"] == f"{name}: must be {accepted}", error


@pytest.mark.parametrize(("tool", "args", "parameter", "accepted"), [
    ("evaluate_in_sim", {"latency": -5}, "latency", "milliseconds, a finite number >= 0 (0: none)"),
    ("evaluate_in_sim", {"latency": 5000, "max_steps": 20}, "latency", "0 to below 1300 ms"),
    ("evaluate_in_sim", {"num_envs": 2}, "num_envs", "1 (with policy=scripted)"),
    ("evaluate_in_sim", {"policy": "tiny", "num_envs": 0}, "num_envs",
     "an int >= 1 (episodes stepped together, their model requests batched)"),
    ("infer_actions", {"prompt": "go", "embodiment": "bridge", "video": "clip.mp4", "start_frame": 50},
     "start_frame", "start_frame 0 to 3"),  # the clip's 5 frames: the last start with a frame after it
    ("compare_sim_runs", {"runs": ["frames"]}, "runs", "a list of 2 to 10 sim run folders"),
])
def test_a_library_checks_refusal_says_what_is_accepted(server, inputs_dir, tool, args, parameter, accepted):
    """The checks the tools share with the command line (latency, num_envs, a clip's start) said what they accept in
    the message alone, and a compare of one run said it nowhere: an agent reading `accepted` found none."""
    args = {k: [str(inputs_dir / r) for r in v] if k == "runs" else str(inputs_dir / v) if k == "video" else v
            for k, v in args.items()}
    error = err(server, tool, args)
    assert (error["parameter"], error["accepted"]) == (parameter, accepted), error


@pytest.mark.parametrize(("tool", "args", "parameter", "accepted"), [
    ("evaluate_in_sim", {"episodes": True}, "episodes", "integer (minimum 1, maximum 20)"),
    ("evaluate_in_sim", {"num_envs": True}, "num_envs", "integer"),
    ("evaluate_in_sim", {"latency": True}, "latency", "number"),
    ("predict_actions", {"prompt": "go", "image": "obs.png", "steps": 2.5}, "steps",
     "integer (minimum 1, maximum 100)"),
    ("show_dataset", {"dataset": "pusht", "episodes": [1.5]}, "episodes", "array of integer (at least 1, at most 20)"),
])
def test_a_boolean_or_fraction_for_a_number_is_refused_not_converted(server, toolbox, tool, args, parameter,
                                                                     accepted):
    """Pydantic's lax mode read `true` as 1 before the toolbox, which refuses a boolean, saw it: `episodes: true` ran
    one episode and returned its result as asked."""
    before = set(toolbox.config.output_dir.iterdir())
    error = err(server, tool, args)
    assert (error["type"], error["parameter"], error["given"], error["accepted"]) == \
        ("invalid_input", parameter, args[parameter], accepted), error
    assert set(toolbox.config.output_dir.iterdir()) == before


def test_a_call_past_the_servers_time_limit_is_a_timeout_error_and_its_work_stops(toolbox, monkeypatch):
    """A sim run takes minutes and nothing bounded a call: the agent waited without end, or its client gave up with no
    word of why, while the run held the model. Past --call-timeout the call is answered with a `timeout` error and its
    worker stops at its next progress report."""
    import threading

    from worldpolicy.agents.mcp_server import CallCancelled

    released, ended = threading.Event(), threading.Event()
    outcome: list = []

    def slow_sim(*args, progress, **kwargs):
        try:
            progress(0, 3, "episode 0/3 done")
            released.wait(60)  # held until the call has been answered
            progress(1, 3, "episode 1/3 done")
            outcome.append("ran on")
        except CallCancelled as exc:
            outcome.append(str(exc))
        finally:
            ended.set()

    monkeypatch.setattr(toolbox, "evaluate_sim", slow_sim)
    server = build_server(toolbox, call_timeout_s=0.05)
    error = err(server, "evaluate_in_sim", {})
    released.set()
    assert ended.wait(60)  # a guard against hanging, not a timing
    assert error["type"] == "timeout" and error["limit_s"] == 0.05, error
    assert "limit of 0.05 s" in error["message"] and "--call-timeout" in error["message"], error
    assert "was stopped, its run folder removed; it had reached: " in error["message"], error
    assert outcome == ["cancelled by the client at: episode 1/3 done"], outcome
    # the agent is told the limit before it calls
    assert "after 0.05 s is stopped" in server.instructions and "is stopped" not in build_server(toolbox).instructions


def test_a_seed_left_out_is_drawn_short_and_given_back(server, inputs_dir):
    """A fresh seed was drawn from all of [0, 2**63): every result an agent read carried a 19-digit number to repeat
    it by."""
    from worldpolicy.policy import FRESH_SEEDS

    result = ok(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "obs.png", "steps": 1})
    assert 0 <= result["seed"] < FRESH_SEEDS == 2**31
    again = ok(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": "obs.png", "steps": 1,
                                           "seed": result["seed"]})
    assert again["actions"] == result["actions"]  # the seed given back repeats the call


def test_visualize_reads_a_users_folder_but_writes_a_new_run(server, toolbox, inputs_dir, tmp_path):
    from worldpolicy.embodiments import get_embodiment

    e = get_embodiment("bridge")
    user_run = inputs_dir / "my_run"
    (user_run / "plots").mkdir(parents=True, exist_ok=True)
    (user_run / "plots" / "actions.png").write_bytes(b"the user's own picture")
    doc = {"schema": "worldpolicy.actions/v1", "mode": "policy", "embodiment": e.key, "fps": e.fps,
           "columns": list(e.columns), "units": list(e.units), "actions": np.zeros((4, e.action_dim)).tolist()}
    (user_run / "actions.json").write_text(json.dumps(doc))
    (inputs_dir / "broken.mp4").write_bytes(b"not a video")
    error = err(server, "visualize_actions", {"path": str(user_run), "video": str(inputs_dir / "broken.mp4")})
    assert error["parameter"] == "video" and "cannot read the video" in error["message"]
    vis = ok(server, "visualize_actions", {"path": str(user_run), "animate": False})
    assert (user_run / "plots" / "actions.png").read_bytes() == b"the user's own picture"
    assert all(Path(p).parent.parent == toolbox.config.output_dir for p in vis["plots"])


def test_wrong_width_error_says_what_is_accepted(server, inputs_dir):
    error = err(
        server,
        "imagine_rollout",
        {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"), "actions": [[0.0] * 7] * 4},
    )
    assert error["given"] == [4, 7] and "[T, 10]" in error["accepted"] and "grasp" in error["accepted"]


def test_schema_violations_and_errors_do_not_kill_the_server(server, inputs_dir):
    async def run():
        async with Client(server) as client:
            bad = await client.call_tool("predict_actions", {"prompt": 42, "seed": "x"})
            task = await client.call_tool("evaluate_in_sim", {"task": "grasp"})
            unknown = await client.call_tool("no_such_tool", {})
            good = await client.call_tool("list_checkpoints", {})
            return bad, task, unknown, good

    bad, task, unknown, good = anyio.run(run)
    assert bad.is_error and "prompt" in bad.content[0].text
    # the structured invalid_input every other bad argument is, not pydantic's text alone
    error = bad.structured_content["error"]
    assert (error["type"], error["parameter"], error["given"], error["accepted"]) == ("invalid_input", "prompt", 42,
                                                                                      "string")
    error = task.structured_content["error"]
    assert (error["parameter"], error["given"], error["accepted"]) == ("task", "grasp", ["reach", "push", "pick_place"])
    assert unknown.is_error
    assert not good.is_error


def test_cache_is_bounded_and_reused(toolbox):
    ckpt = toolbox.resolve_checkpoint("tiny")

    def policy(name):
        return toolbox.policy(ckpt, toolbox._embodiment(name))

    first = policy("bridge")
    assert policy("bridge") is first  # loaded once
    policy("umi")
    policy("droid/relative_pose")
    loaded = toolbox.list_checkpoints()["loaded"]
    assert [x["embodiment"] for x in loaded] == ["umi", "droid/relative_pose"]  # bound 2: bridge evicted
    umi = policy("umi")  # a hit moves it to most recent
    assert [x["embodiment"] for x in toolbox.list_checkpoints()["loaded"]] == ["droid/relative_pose", "umi"]
    assert policy("umi") is umi and policy("bridge") is not first


def test_short_sim_evaluation(server):
    pytest.importorskip("mujoco", reason="sim extra not installed")
    progress: list = []
    result = ok(server, "evaluate_in_sim", {"task": "reach", "policy": "scripted", "episodes": 2, "max_steps": 20},
                progress)
    assert result["episodes"] == 2 and 0 <= result["success_rate"] <= 1 and result["num_envs"] == 1
    # each episode is reported as it ends (a long evaluation said nothing between its start and its end)
    assert [m for _, _, m in progress] == ["simulating 2 episodes of reach", "episode 1/2 done", "episode 2/2 done",
                                           "done"], progress
    assert Path(result["files"]["report"]).is_file()
    page = Path(result["files"]["report"]).read_text()
    assert "sim run" in page and "success_rate" in page
    # the episodes, a row each, named among the files (it was only one of `outputs`)
    rows = Path(result["files"]["episodes"]).read_text().splitlines()
    assert result["files"]["episodes"] in result["files"]["outputs"] and len(rows) == 1 + 2, rows
    assert rows[0].startswith("task,policy,seed,success,") and rows[1].startswith("reach,scripted,10000,"), rows
    error = err(server, "evaluate_in_sim", {"policy": "no-such-checkpoint"})
    assert error["parameter"] == "policy" and "scripted" in error["accepted"]  # the tool's own argument
    assert result["perturb"] is None  # the scenes as drawn


def test_sim_evaluation_under_a_perturbation(server):
    """`perturb` reaches the simulator as `worldpolicy sim --perturb` does: the run's report.json records the shift
    (canonical order), so compare_sim_runs pairs it with a clean run and lists it among the settings that differ."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    args = {"task": "reach", "episodes": 1, "max_steps": 5}
    shifted = ok(server, "evaluate_in_sim", {**args, "perturb": "table=red, light=0.5"})
    clean = ok(server, "evaluate_in_sim", args)
    assert shifted["perturb"] == "light=0.5,table=red"
    report = json.loads((Path(shifted["run_dir"]) / "report.json").read_text())
    assert report["perturb"] == "light=0.5,table=red"
    compared = ok(server, "compare_sim_runs", {"runs": [clean["run_dir"], shifted["run_dir"]]})
    assert any(d["setting"] == "perturb" for d in compared["differences"]), compared["differences"]
    # each run's chunk timing, as the page's runs table shows it (compare.json's: the result is a summary)
    whole = json.loads(Path(compared["files"]["comparison"]).read_text())
    assert [(r["latency_ms"], r["latency_ticks"], r["rtc"]) for r in whole["runs"]] == [(0.0, 0, False)] * 2
    error = err(server, "evaluate_in_sim", {**args, "perturb": "camera=1"})
    assert error["parameter"] == "perturb" and error["given"] == "camera=1", error
    assert error["accepted"]["camera"] == "a number of 0.001 to 0.1 m", error


def test_a_checkpoint_with_its_own_embodiment_is_used_with_it(tmp_path, inputs_dir):
    """Leaving `embodiment` out means the checkpoint's own (as Policy.from_pretrained and the CLI), not droid."""
    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.models import shipped_model

    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path, checkpoint_dirs=[shipped_model().parent],
                                    input_roots=[inputs_dir], device="cpu"))
    server = build_server(toolbox)
    assert [(c["name"], c["embodiment"]) for c in ok(server, "list_checkpoints", {})["checkpoints"]] == [
        ("shipped", "panda_reach")]
    pred = ok(server, "predict_actions", {"prompt": "move the gripper to the red ball", "seed": 0, "steps": 1,
                                          "image": str(inputs_dir / "obs.png")})
    assert pred["embodiment"] == "panda_reach" and np.asarray(pred["actions"]).shape == (4, 10)
    explicit = ok(server, "predict_actions", {"prompt": "move the gripper to the red ball", "seed": 0, "steps": 1,
                                              "image": str(inputs_dir / "obs.png"), "embodiment": "panda_reach"})
    np.testing.assert_allclose(explicit["actions"], pred["actions"])
    # the output directory is readable beside explicit input roots: one call's actions feed the next
    fd = ok(server, "imagine_rollout", {"prompt": "move the gripper to the red ball", "seed": 0, "steps": 1,
                                        "image": str(inputs_dir / "obs.png"), "actions_file": pred["files"]["actions"]})
    assert fd["embodiment"] == "panda_reach" and Path(fd["files"]["video"]).is_file()


def test_the_shipped_model_is_listed_by_its_one_name(tmp_path):
    """The tools listed the shipped model by its folder's name, `panda_reach` (its embodiment's), where its reports,
    the server and `--checkpoint` call it `shipped` (`models.checkpoint_name`); a folder of the user's that is also
    called `shipped` is told apart by its parent, as two folders of one name are."""
    from worldpolicy.agents.toolbox import _unique_names
    from worldpolicy.models import shipped_model

    mine = [tmp_path / "a" / "shipped", tmp_path / "b" / "final", tmp_path / "c" / "final"]
    assert _unique_names([shipped_model().resolve(), *mine]) == ["shipped", "a/shipped", "b/final", "c/final"]


def test_a_broken_embodiment_json_affects_its_checkpoint_only(tiny_checkpoint_dir, inputs_dir, tmp_path):
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig

    root = tmp_path / "ckpts"
    shutil.copytree(tiny_checkpoint_dir / "tiny", root / "good")
    shutil.copytree(tiny_checkpoint_dir / "tiny", root / "broken")
    (root / "broken" / "embodiment.json").write_text("{not json")
    server = build_server(Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=[root],
                                                input_roots=[inputs_dir], chunk_size=4, resolution_tier=256)))
    listed = {c["name"]: c for c in ok(server, "list_checkpoints", {})["checkpoints"]}
    assert listed["good"]["embodiment"] == "droid/joint_pos" and listed["good"].get("problem") is None
    assert listed["broken"]["embodiment"] is None and "not valid JSON" in listed["broken"]["problem"]
    good = ok(server, "predict_actions", {"prompt": "go", "checkpoint": "good", "embodiment": "bridge", "steps": 1,
                                          "image": str(inputs_dir / "obs.png")})
    assert good["embodiment"] == "bridge"
    error = err(server, "predict_actions", {"prompt": "go", "checkpoint": "broken", "image": str(inputs_dir / "obs.png")})
    assert error["parameter"] == "checkpoint" and "embodiment.json is unusable" in error["message"]


def test_a_partial_checkpoint_folder_is_listed_with_its_problem(tiny_checkpoint_dir, tmp_path):
    """A partial download or copy (a part missing, weights cut short, a Git LFS pointer) was listed as usable and
    failed on the first call that loaded it; a folder holding only model_index.json (as the stubs some tests list)
    is no more loadable, and is listed as such too."""
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig

    root = tmp_path / "ckpts"
    for name in ("good", "no_vae", "cut_short", "lfs"):
        shutil.copytree(tiny_checkpoint_dir / "tiny", root / name)
    shutil.rmtree(root / "no_vae" / "vae")
    weights = root / "cut_short" / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    (root / "lfs" / "transformer" / "diffusion_pytorch_model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 2200000\n")
    (root / "stub").mkdir()
    shutil.copy(tiny_checkpoint_dir / "tiny" / "model_index.json", root / "stub")
    listed = Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=[root])).list_checkpoints()
    problems = {c["name"]: c["problem"] for c in listed["checkpoints"]}
    assert problems.pop("good") is None
    expected = {"no_vae": "vae/ is missing", "cut_short": "transformer/diffusion_pytorch_model.safetensors is",
                "lfs": "a Git LFS pointer", "stub": "transformer/ is missing; vae/ is missing"}
    assert sorted(problems) == sorted(expected)
    for name, said in expected.items():
        assert "is incomplete" in problems[name] and said in problems[name], (name, problems[name])


def test_checkpoints_of_the_same_name_in_two_directories_are_listed_apart(tiny_checkpoint_dir, inputs_dir, tmp_path):
    """Two `final` folders were both listed as `final`, and that name loaded whichever came last."""
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig

    for run in ("run_a", "run_b"):
        shutil.copytree(tiny_checkpoint_dir / "tiny", tmp_path / run / "final")
    shutil.copytree(tiny_checkpoint_dir / "tiny", tmp_path / "elsewhere" / "run_a" / "final")
    dirs = [tmp_path / "run_a", tmp_path / "run_b", tmp_path / "run_a", tmp_path / "elsewhere" / "run_a"]
    server = build_server(Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=dirs,
                                                input_roots=[inputs_dir], chunk_size=4, resolution_tier=256)))
    listed = ok(server, "list_checkpoints", {})["checkpoints"]
    assert [(c["name"], c["path"]) for c in listed] == [
        (f"{tmp_path.name}/run_a/final", str(tmp_path / "run_a" / "final")),
        ("run_b/final", str(tmp_path / "run_b" / "final")),
        ("elsewhere/run_a/final", str(tmp_path / "elsewhere" / "run_a" / "final")),
    ]  # a directory given twice is listed once
    pred = ok(server, "predict_actions", {"prompt": "go", "checkpoint": "run_b/final", "embodiment": "bridge",
                                          "steps": 1, "image": str(inputs_dir / "obs.png")})
    assert pred["checkpoint"] == "run_b/final"  # as listed, what `checkpoint` takes back: not its path
    error = err(server, "predict_actions", {"prompt": "go", "checkpoint": "final", "image": str(inputs_dir / "obs.png")})
    assert error["parameter"] == "checkpoint" and error["accepted"] == sorted(c["name"] for c in listed)


def test_an_actions_file_with_non_finite_values_is_refused_as_such(server, toolbox, inputs_dir):
    """actions.json writes a non-finite value as null (strict JSON); it was refused as 'not a list of numbers'."""
    from worldpolicy.embodiments import get_embodiment

    rows = [[0.0] * get_embodiment("bridge").action_dim for _ in range(4)]
    rows[2][3] = None
    path = toolbox.config.output_dir / "nan_actions.json"
    path.write_text(json.dumps({"actions": rows}))
    error = err(server, "imagine_rollout", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
                                            "actions_file": str(path)})
    assert error["parameter"] == "actions_file" and "NaN or inf at row 2, column 'r0'" in error["message"], error
    # the parameter names the file and `given` its path: the message said "actions_file: actions file '…': …"
    assert error["message"].startswith("actions_file: NaN or inf at row 2, column 'r0'; accepted: finite"), error
    assert error["given"] == str(path), error


def test_an_actions_file_is_read_as_every_other_reader_reads_it(server, toolbox, inputs_dir):
    """The tools read an actions file themselves: `"normalized": true` values were taken as physical, millimetres as
    metres and a future schema as this one, and columns in another order were refused (the CLI matches them by name)."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.processing.actions import to_physical

    e = get_embodiment("bridge")
    columns = list(e.columns)
    model = np.linspace(-0.5, 0.5, 4 * e.action_dim).reshape(4, e.action_dim)

    def imagine(name, doc):
        path = toolbox.config.output_dir / f"{name}.json"
        path.write_text(json.dumps(doc))
        args = {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"), "actions_file": str(path),
                "steps": 1}
        return call(server, "imagine_rollout", args)[1]

    normalized = imagine("normalized", {"actions": model.tolist(), "columns": columns, "normalized": True})
    assert not normalized.is_error
    np.testing.assert_allclose(normalized.structured_content["actions"], to_physical(e, model), atol=1e-6)
    reordered = imagine("reordered", {"actions": model[:, ::-1].tolist(), "columns": columns[::-1],
                                      "normalized": True})
    np.testing.assert_allclose(reordered.structured_content["actions"], to_physical(e, model), atol=1e-6)
    for name, doc, fragment in [
        ("millimetres", {"actions": model.tolist(), "columns": columns, "units": ["mm"] * 3 + list(e.units[3:])},
         "tx in 'mm' (expected 'm')"),
        ("future", {"schema": "worldpolicy.actions/v2", "actions": model.tolist(), "columns": columns},
         "written by a newer worldpolicy (schema 'worldpolicy.actions/v2'"),
    ]:
        result = imagine(name, doc)
        assert result.is_error, name
        error = result.structured_content["error"]
        assert error["parameter"] == "actions_file" and fragment in error["message"], error


def test_one_cameras_image_for_a_multi_camera_model_is_warned_in_the_result(server, inputs_dir):
    """`image` for droid (three cameras composed) took one camera's picture as the composite without a word; the
    command line warned. The result carries the same warning, saying how to pass each camera."""
    from worldpolicy.embodiments import get_embodiment

    emb = get_embodiment("droid/joint_pos")
    state = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.78, 0.0]
    base = {"prompt": "go", "embodiment": "droid/joint_pos", "state": state, "seed": 0, "steps": 1}
    one = ok(server, "predict_actions", {**base, "image": str(inputs_dir / "obs.png")})
    assert one["warnings"] == [
        f"image {str(inputs_dir / 'obs.png')!r} is taken as the composite the model was trained on, the 3 cameras of "
        f"embodiment 'droid/joint_pos' ({', '.join(emb.camera_keys)}, the wrist camera on top, the other two side by "
        "side below), but it looks like one camera's view: it is 72x96 pixels, not near the composite's 540x640 shape. "
        "Pass each camera instead: images={" + ", ".join(f'"{k}": FILE' for k in emb.camera_keys) + "}"]
    each = ok(server, "predict_actions", {**base, "images": {k: str(inputs_dir / "obs.png") for k in emb.camera_keys}})
    # no single-view warning; the 4:3 images stretched into the composite's 16:9 places are said, once, each named
    assert len(each["warnings"]) == 1 and each["warnings"][0].startswith(
        "embodiment 'droid/joint_pos' composes its cameras (the wrist camera on top, the other two side by side "
        "below), each camera resized to its place, so a camera of another shape is stretched"), each["warnings"]
    assert all(f"camera {k} is 72x96 (aspect 1.33)" in each["warnings"][0] for k in emb.camera_keys), each["warnings"]
    bridge = ok(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
                                            "steps": 1})
    assert bridge["warnings"] == []  # one camera: nothing to compose


def test_a_state_the_embodiment_ignores_is_a_warning_in_the_result(server, inputs_dir):
    """`state` for an embodiment that does not condition on it was refused here, while `act(state=...)`, the server
    and now `predict` ignore it with a warning (`policy.ignored_state_warning`): the result says it, once."""
    result = ok(server, "infer_actions", {"prompt": "go", "embodiment": "bridge", "video": str(inputs_dir / "clip.mp4"),
                                          "state": [0.0] * 8, "steps": 1})
    ignored = [w for w in result["warnings"] if w.startswith("state is ignored: embodiment 'bridge'")]
    assert len(ignored) == 1, result["warnings"]


def test_images_for_an_embodiment_without_a_composite_name_the_one_camera_it_sees(server, inputs_dir):
    """An embodiment with three cameras and no composite: the model sees one. `images` with one of them was refused as
    missing the other two, and all three were accepted while the model silently saw only the first; the command
    line's --camera takes one (and refuses more), and so do the tools."""
    from worldpolicy.embodiments import get_embodiment, register_embodiment

    spec = {k: v for k, v in get_embodiment("droid/relative_pose").to_spec().items() if k not in ("variant", "variants")}
    keys = register_embodiment({**spec, "name": "three_cameras", "aliases": [], "composite": None}).camera_keys
    base = {"prompt": "go", "embodiment": "three_cameras", "seed": 0, "steps": 1}
    one = ok(server, "predict_actions", {**base, "images": {keys[1]: str(inputs_dir / "obs.png")}})
    assert one["chunk_size"] == 4 and one["warnings"] == []
    error = err(server, "predict_actions", {**base, "images": {k: str(inputs_dir / "obs.png") for k in keys}})
    assert error["parameter"] == "images" and "it sees one camera, not a composite; given" in error["message"], error


def test_a_boolean_guidance_is_refused_before_a_model_loads(toolbox, inputs_dir):
    """guidance=True (a Strands or Python caller) passed the toolbox's number check and was refused by the policy only
    after the checkpoint loaded, naming no parameter."""
    from worldpolicy.agents import ToolInputError

    loaded_before = list(toolbox._policies)
    with pytest.raises(ToolInputError) as caught:
        toolbox.predict("go", embodiment="bridge", image=str(inputs_dir / "obs.png"), guidance=True)
    assert caught.value.parameter == "guidance" and caught.value.given is True
    assert list(toolbox._policies) == loaded_before


def test_an_error_echoes_a_long_value_shortened():
    """A `state` of a million values came back whole in the error's `given`."""
    error = ToolInputError("state", "has 1000000 values", [0.5] * 10**6, "8 values").to_dict()
    assert error["given"] == "[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, ...]" and error["accepted"] == "8 values"
    assert ToolInputError("state", "x", [0.5, 1]).to_dict()["given"] == [0.5, 1]  # short: as given


def test_a_state_beyond_float32_is_refused_before_a_model_loads(toolbox, inputs_dir):
    """A state of 1e308 passed the finite check and the model, in float32, returned NaN actions for it: `predict`
    raised "the model returned NaN" naming no argument."""
    from worldpolicy.agents import ToolInputError

    loaded_before = list(toolbox._policies)
    with pytest.raises(ToolInputError) as caught:
        toolbox.predict("go", embodiment="droid", image=str(inputs_dir / "obs.png"), state=[0.0] * 7 + [1e308])
    assert caught.value.parameter == "state" and "beyond float32" in str(caught.value)
    assert "float32's range" in caught.value.accepted
    assert list(toolbox._policies) == loaded_before


@pytest.fixture
def nan_model(monkeypatch):
    """The model returns NaN in its first action column (a broken checkpoint, float16 overflow)."""
    from worldpolicy.policy import Policy

    finish = Policy._finish

    def nan_actions(self, prepared, out, started):
        prediction = finish(self, prepared, out, started)
        prediction.actions[:, 0] = np.nan
        return prediction

    monkeypatch.setattr(Policy, "_finish", nan_actions)


def test_a_model_that_returns_nan_is_an_internal_error_not_the_callers_input(server, toolbox, inputs_dir, nan_model):
    """Non-finite actions from the model (a broken checkpoint, float16 overflow) came back as invalid_input, telling
    the agent to change arguments that were fine; and the run folder made for them stayed, empty, where no result
    pointed."""
    runs_before = sorted(toolbox.config.output_dir.glob("policy-*"))
    error = err(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
                                            "steps": 1})
    assert error["type"] == "internal_error" and "parameter" not in error, error
    assert sorted(toolbox.config.output_dir.glob("policy-*")) == runs_before
    assert "the model returned NaN or inf" in error["message"], error
    # no folder keeps them: the message said an actions.json (in a folder since removed) kept them
    assert "no run was written. A broken checkpoint" in error["message"] and "keeps" not in error["message"]


def test_a_model_that_returns_nan_writes_no_run(server, inputs_dir, nan_model, monkeypatch):
    """The run was written (its video encoded) only to be removed, and its message said of the actions.json it
    wrote that it kept them, rewritten afterwards by replacing words in `write_run`'s text."""
    import worldpolicy.viz.run

    def refuse(*args, **kwargs):
        raise AssertionError("write_run was called for NaN actions")

    monkeypatch.setattr(worldpolicy.viz.run, "write_run", refuse)
    image = str(inputs_dir / "obs.png")
    error = err(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": image, "steps": 1})
    assert error["type"] == "internal_error" and "the model returned NaN or inf" in error["message"], error
    assert "no run was written" in error["message"] and "AssertionError" not in error["message"], error


@pytest.mark.parametrize(("option", "value", "message"), [
    ("dtype", "float8", "dtype='float8' is not supported; accepted: float32"),
    ("device", "tpu", "device='tpu' is not a torch device"),
    ("chunk_size", 6, "chunk_size=6 is not accepted"),
    ("resolution_tier", 300, "resolution_tier=300 is not supported; accepted: [256,"),
    ("max_loaded", True, "max_loaded=True must be an integer >= 1"),  # a bool passed as the int 1
])
def test_a_bad_load_option_fails_when_the_server_is_configured(tmp_path, option, value, message):
    """`worldpolicy mcp --dtype float8` started serving, and every tool call then failed as an invalid_input naming
    none of the agent's arguments."""
    from worldpolicy.agents import ToolboxConfig

    with pytest.raises(ValueError, match=re.escape(message)):
        ToolboxConfig(output_dir=tmp_path, **{option: value})


def test_the_server_takes_shipped_as_a_checkpoint_dir_as_predict_takes_it(tmp_path, monkeypatch):
    """`worldpolicy mcp --checkpoint-dir shipped` was refused as a folder that does not exist, so trying the agent
    tools without weights of one's own meant finding the package's folder."""
    from worldpolicy.agents import mcp_server
    from worldpolicy.cli import main
    from worldpolicy.models import shipped_model

    served = []
    monkeypatch.setattr(mcp_server, "run_server", lambda config, *args, **kwargs: served.append(config))
    assert main(["mcp", "--checkpoint-dir", "shipped", "--output-dir", str(tmp_path / "runs")]) == 0
    from worldpolicy.agents import Toolbox

    listed = Toolbox(served[0]).list_checkpoints()["checkpoints"]
    assert [(c["name"], c["path"], c["embodiment"]) for c in listed] == [
        ("shipped", str(shipped_model().resolve()), "panda_reach")]


@pytest.mark.parametrize(("argv", "limit"), [([], 1800.0), (["--call-timeout", "60"], 60.0),
                                           (["--call-timeout", "0"], None)])
def test_the_servers_call_timeout_is_its_flags(tmp_path, monkeypatch, argv, limit):
    from worldpolicy.agents import mcp_server
    from worldpolicy.cli import main

    served = []
    monkeypatch.setattr(mcp_server, "run_server", lambda *args, **kwargs: served.append(kwargs["call_timeout_s"]))
    assert main(["mcp", "--output-dir", str(tmp_path / "runs"), *argv]) == 0
    assert served == [limit]


def test_what_the_cli_would_log_about_a_call_is_in_its_warnings(server, inputs_dir):
    """A clip shorter than chunk_size+1 frames (its last frame repeated: the later action rows explain copies of it)
    and actions far outside the training range were logged on the server only; the agent's result said `[]`."""
    short = ok(server, "infer_actions", {"prompt": "go", "embodiment": "bridge", "video": str(inputs_dir / "short.mp4"),
                                         "steps": 1})
    assert any("video has 2 frames; using 5 (chunk_size+1), repeating the last: only the first 1 action rows" in w
               for w in short["warnings"]), short["warnings"]
    far = ok(server, "imagine_rollout", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
                                         "actions": [[1000.0] * 10] * 4, "steps": 1})
    assert any("far outside what embodiment 'bridge' was trained on" in w for w in far["warnings"]), far["warnings"]
    clean = ok(server, "infer_actions", {"prompt": "go", "embodiment": "bridge", "video": str(inputs_dir / "clip.mp4"),
                                         "steps": 1})
    assert clean["warnings"] == []


@pytest.mark.parametrize("option", ["episodes", "seed", "max_steps"])
def test_a_boolean_sim_count_is_refused(toolbox, option):
    """evaluate_sim(episodes=True) ran one episode and reported `episodes: true`."""
    from worldpolicy.agents import ToolInputError

    with pytest.raises(ToolInputError) as caught:
        toolbox.evaluate_sim("reach", "scripted", **{option: True})
    assert caught.value.parameter == option and caught.value.given is True


def test_image_files_are_the_ones_the_command_line_reads(server, inputs_dir):
    """The tools had their own list of image suffixes, without the TIFF (16-bit, float) `--image` takes."""
    result = ok(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs16.tif"),
                                            "steps": 1})
    assert result["mode"] == "policy"
    error = err(server, "predict_actions", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "notes.txt")})
    assert ".tif" in error["accepted"] and ".png" in error["accepted"], error


def test_infer_actions_takes_an_animated_gif_and_a_folder_of_frames_as_the_command_line_does(server, inputs_dir):
    """`video` took video files only, where `worldpolicy predict --video` and `Policy.infer_actions` also read an
    animated GIF and a folder of frames; the same frames in either give the same actions."""
    from worldpolicy.processing.observations import load_frames

    np.testing.assert_array_equal(load_frames(inputs_dir / "clip.gif"), load_frames(inputs_dir / "frames"))
    base = {"prompt": "go", "embodiment": "bridge", "seed": 0, "steps": 1}
    gif = ok(server, "infer_actions", {**base, "video": str(inputs_dir / "clip.gif")})
    folder = ok(server, "infer_actions", {**base, "video": str(inputs_dir / "frames")})
    assert gif["mode"] == folder["mode"] == "inverse_dynamics"
    np.testing.assert_allclose(gif["actions"], folder["actions"], atol=1e-6)
    one = err(server, "infer_actions", {**base, "video": str(inputs_dir / "obs.png")})
    assert one["parameter"] == "video" and "has 1 frame; inverse dynamics needs at least 2" in one["message"], one
    other = err(server, "infer_actions", {**base, "video": str(inputs_dir / "notes.txt")})
    assert {".mp4", ".gif", "a folder of frames"} <= set(other["accepted"]), other


def test_one_cameras_clip_for_a_multi_camera_model_is_warned_once_in_the_result(server, inputs_dir):
    """infer_actions with one camera's clip for droid (three cameras composed) said nothing, where `predict --video`
    warns; the policy now warns of files too, and the result carries the warning once, in the tools' terms."""
    state = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.78, 0.0]
    result = ok(server, "infer_actions", {"prompt": "go", "embodiment": "droid/joint_pos", "state": state, "seed": 0,
                                          "steps": 1, "video": str(inputs_dir / "clip.gif")})
    views = [w for w in result["warnings"] if "looks like one camera's view" in w]
    assert len(views) == 1 and views[0].startswith(f"video {str(inputs_dir / 'clip.gif')!r} is taken as the composite")
    assert "infer_actions takes one clip" in views[0], views


def test_one_view_for_a_checkpoint_trained_on_one_view_is_not_warned_as_a_camera(tiny_checkpoint_dir, inputs_dir,
                                                                                  tmp_path):
    """A checkpoint fine-tuned on one pre-composed view (raw clips labelled as a dataset's observation.image) was
    told "looks like one camera's view" by infer_actions and predict_actions, where `predict` no longer says it."""
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig

    root = tmp_path / "ckpts"
    shutil.copytree(tiny_checkpoint_dir / "tiny", root / "tuned")
    (root / "tuned" / "trainer_state.json").write_text(
        json.dumps({"frames": {"cameras": {"observation/image": [64, 96]}, "composed": [64, 96]}}))
    server = build_server(Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=[root],
                                                input_roots=[inputs_dir], chunk_size=4, resolution_tier=256,
                                                device="cpu")))
    base = {"prompt": "go", "embodiment": "droid/joint_pos", "checkpoint": "tuned", "seed": 0, "steps": 1,
            "state": [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.78, 0.0]}
    clip = ok(server, "infer_actions", {**base, "video": str(inputs_dir / "clip.gif")})
    image = ok(server, "predict_actions", {**base, "image": str(inputs_dir / "obs.png")})
    assert not [w for w in clip["warnings"] + image["warnings"] if "looks like one camera" in w], (clip, image)
    # judged by its size against the trained frame instead
    assert any("72x96 where it was 64x96" in w for w in image["warnings"]), image["warnings"]


@pytest.mark.parametrize("argv, message", [
    (["--transport", "http", "--port", "-1"], "--port -1: expected 0..65535"),  # was bind()'s OverflowError traceback
    # an address not on this machine (TEST-NET-1: no lookup); was uvicorn's log lines and exit code 3
    (["--transport", "http", "--host", "192.0.2.1"], "--host 192.0.2.1 --port 8020: cannot listen there"),
    (["--output-dir", "A_FILE"], "--output-dir: "),  # was accepted: every tool call failed later
    (["--input-root", "MISSING"], "--input-root: ["),  # was accepted: every read from it was refused later
    (["--checkpoint-dir", "MISSING"], "--checkpoint-dir: ["),
    (["--max-loaded", "0"], "--max-loaded=0 must be an integer >= 1"),
    (["--chunk-size", "3"], "--chunk-size=3 is not accepted"),
    (["--call-timeout", "-1"], "--call-timeout -1: expected seconds > 0, or 0 (no limit)"),
])
def test_mcp_bad_flags_are_one_line_before_the_server_starts(tmp_path, capsys, monkeypatch, argv, message):
    from worldpolicy.agents import mcp_server
    from worldpolicy.cli import main

    (tmp_path / "afile").write_text("x")
    argv = [{"A_FILE": str(tmp_path / "afile"), "MISSING": str(tmp_path / "missing")}.get(a, a) for a in argv]
    monkeypatch.setattr(mcp_server, "run_server", lambda *a, **k: pytest.fail("the server started"))
    out = [] if "--output-dir" in argv else ["--output-dir", str(tmp_path / "runs")]  # a repeat is the parser's error
    assert main(["mcp", *out, *argv]) == 2
    assert f"worldpolicy mcp: error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "flags"), [
    ([], "--input-root and --output-dir"), (["--input-root", "ROOT"], "--output-dir"),
    (["--output-dir", "RUNS"], "--input-root")])
def test_a_server_started_in_the_filesystem_root_needs_its_folders_named(tmp_path, capsys, monkeypatch, argv, flags):
    """Claude Desktop (for one) starts stdio servers in /: the documented minimal `worldpolicy mcp --checkpoint-dir
    DIR` then let the tools read image, video and actions files anywhere on the machine (the input root defaults to
    the working directory), and every call failed writing its run under /worldpolicy_runs."""
    from worldpolicy.agents import mcp_server
    from worldpolicy.cli import main

    monkeypatch.setattr(mcp_server, "run_server", lambda *a, **k: pytest.fail("the server started"))
    monkeypatch.chdir("/")
    argv = [{"ROOT": str(tmp_path), "RUNS": str(tmp_path / "runs")}.get(a, a) for a in argv]
    assert main(["mcp", *argv]) == 2
    said = capsys.readouterr().err
    assert f"worldpolicy mcp: error: {flags}: " in said and "the working directory is /" in said, said
    monkeypatch.setattr(mcp_server, "run_server", lambda *a, **k: None)
    assert main(["mcp", "--input-root", str(tmp_path), "--output-dir", str(tmp_path / "runs")]) == 0


def test_list_embodiments_is_the_listing_worldpolicy_embodiments_prints(server, capsys):
    """The tool listed the registry only, while `worldpolicy embodiments` also lists the shipped model's own
    embodiment (`panda_reach`): an agent told to try the shipped model could not learn its columns or cameras."""
    from worldpolicy.cli import main

    assert main(["embodiments", "--json"]) == 0
    cli = [(r["key"], r["source"]) for r in json.loads(capsys.readouterr().out)]
    rows = ok(server, "list_embodiments", {})["embodiments"]
    assert [r["key"] for r in rows] == [key for key, _ in cli] and ("panda_reach" in [key for key, _ in cli])
    assert [r["source"] == "registry" for r in rows] == [source == "registry" for _, source in cli]
    shipped = next(r for r in rows if r["key"] == "panda_reach")
    assert shipped["camera_keys"] == ["observation/exterior_image_1_left", "observation/wrist_image_left"]
    # this server serves `tiny` only: the row says how to serve the model the embodiment comes with
    assert shipped["checkpoint"] is None and "--checkpoint-dir shipped" in shipped["source"], shipped
    assert {r["checkpoint"] for r in rows} == {None}


def test_list_embodiments_of_a_checkpoint_describes_a_robot_of_its_own(tiny_checkpoint_dir, inputs_dir, tmp_path):
    """A checkpoint trained for a robot of its own runs with its embodiment.json, which no listing names: asked for
    that checkpoint, list_embodiments gives its columns, cameras and state; a wrong name is told it as accepted."""
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.models import shipped_model

    root = tmp_path / "ckpts"
    shutil.copytree(tiny_checkpoint_dir / "tiny", root / "mine")
    spec = json.loads((shipped_model() / "embodiment.json").read_text())
    (root / "mine" / "embodiment.json").write_text(json.dumps({**spec, "name": "my_arm"}))
    shutil.copytree(tiny_checkpoint_dir / "tiny", root / "plain")
    server = build_server(Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=[root],
                                                input_roots=[inputs_dir], chunk_size=4, resolution_tier=256)))
    assert "my_arm" not in [r["key"] for r in ok(server, "list_embodiments", {})["embodiments"]]
    [mine] = ok(server, "list_embodiments", {"checkpoint": "mine"})["embodiments"]
    assert (mine["key"], mine["checkpoint"], mine["source"]) == ("my_arm", "mine", "checkpoint mine (embodiment.json)")
    assert mine["columns"] == spec["columns"] and mine["camera_keys"] == spec["camera_keys"]
    [plain] = ok(server, "list_embodiments", {"checkpoint": "plain"})["embodiments"]
    assert plain["key"] == "droid/joint_pos" and plain["needs_state"] and plain["source"].startswith("registry")
    error = err(server, "list_embodiments", {"checkpoint": "nope"})
    assert error["parameter"] == "checkpoint" and error["accepted"] == ["mine", "plain"], error
    error = err(server, "predict_actions", {"prompt": "go", "checkpoint": "mine", "embodiment": "my_robot",
                                            "image": str(inputs_dir / "obs.png")})
    assert error["parameter"] == "embodiment" and error["message"] == "embodiment: unknown embodiment 'my_robot'"
    assert error["accepted"][-1] == "my_arm" and "bridge" in error["accepted"], error  # its own, then the registry's


def test_an_embodiment_spec_file_is_not_read_by_the_tools(server, toolbox, inputs_dir, tmp_path):
    """A `*.json` embodiment was read from anywhere on disk (outside the input roots), then failed at load time as
    an error naming no parameter: the tools take embodiment names; a robot of one's own comes with its checkpoint."""
    from worldpolicy.models import shipped_model

    outside = tmp_path / "robot.json"
    outside.write_text((shipped_model() / "embodiment.json").read_text())
    loaded_before = list(toolbox._policies)
    error = err(server, "predict_actions", {"prompt": "go", "image": str(inputs_dir / "obs.png"),
                                            "embodiment": str(outside)})
    assert error["parameter"] == "embodiment" and "not a spec file" in error["message"], error
    assert error["given"] == str(outside) and "bridge" in error["accepted"], error
    assert list(toolbox._policies) == loaded_before


@pytest.mark.parametrize(("args", "parameter", "fragment"), [
    # the command line refuses it too: it would be ignored, and the run look as asked
    ({"policy": "scripted", "embodiment": "bridge"}, "embodiment", "does not apply to policy 'scripted'"),
    # no robot can execute it: refused before a run folder is made (one was left empty)
    ({"policy": "random", "embodiment": "pusht"}, "embodiment", "layout 'generic'"),
    # a random policy ends no episode early: the worker thread ran for as many steps, holding the model lock
    ({"policy": "random", "max_steps": 1001}, "max_steps", "[1, 1000]"),
    # joint targets for another arm: the Panda's decoder refused them only at the first chunk
    ({"policy": "random", "embodiment": "six_arm"}, "embodiment",
     "embodiment 'six_arm' has 6 joint columns but robot 'panda' has 7 arm joints"),
])
def test_sim_arguments_the_command_line_refuses_are_refused(server, toolbox, args, parameter, fragment):
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.embodiments import register_embodiment

    register_embodiment({  # a 6-joint arm (the suite undoes the registration after the test)
        "name": "six_arm", "domain": "six_arm", "domain_id": 21, "action_dim": 7, "chunk_size": 4, "fps": 15,
        "columns": [f"j{i}" for i in range(6)] + ["gripper"], "units": ["rad"] * 6 + ["1"], "gripper_column": "gripper",
        "layout": "joint_position", "normalization": "quantile",
        "stats": {"q01": [-1.0] * 6 + [0.0], "q99": [1.0] * 7}})
    runs_before = sorted(toolbox.config.output_dir.glob("sim-*"))
    error = err(server, "evaluate_in_sim", {"episodes": 1, **args})
    assert error["parameter"] == parameter and fragment in error["message"], error
    assert sorted(toolbox.config.output_dir.glob("sim-*")) == runs_before


def test_sim_takes_the_embodiment_a_checkpoint_comes_with(tmp_path):
    """`evaluate_in_sim(policy="shipped", embodiment="panda_reach")` was refused as an unknown embodiment, though
    list_embodiments names it and predict_actions takes it."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.models import shipped_model

    server = build_server(Toolbox(ToolboxConfig(output_dir=tmp_path, checkpoint_dirs=[shipped_model()], device="cpu")))
    shipped = next(r for r in ok(server, "list_embodiments", {})["embodiments"] if r["key"] == "panda_reach")
    assert (shipped["checkpoint"], shipped["source"]) == ("shipped", "shipped model panda_reach")
    result = ok(server, "evaluate_in_sim", {"policy": "shipped", "embodiment": "panda_reach", "episodes": 1,
                                            "max_steps": 2})
    assert result["episodes"] == 1 and Path(result["files"]["report"]).is_file()
    assert result["embodiment"] == "panda_reach"  # the result says which action space ran
    # named as list_checkpoints and `policy` name it (and compare_sim_runs, from report.json), not by its install path
    assert result["policy"] == "shipped"
    assert ok(server, "evaluate_in_sim", {"policy": "random", "episodes": 1, "max_steps": 2})["embodiment"] == (
        "droid/relative_pose")


def test_nan_actions_after_inputs_warned_of_name_those_warnings(server, inputs_dir, nan_model):
    """The error blamed the checkpoint or float16 only; actions far outside the training range, warned of, are the
    likelier cause, and the agent saw no warning (the result that would carry them is not returned)."""
    error = err(server, "imagine_rollout", {"prompt": "go", "embodiment": "bridge", "steps": 1,
                                            "image": str(inputs_dir / "obs.png"), "actions": [[1e6] + [0.0] * 9] * 4})
    assert error["type"] == "internal_error" and "the model returned NaN or inf" in error["message"], error
    assert "the inputs were warned of: actions: tx" in error["message"] and "far outside" in error["message"], error


def test_listing_and_argument_checks_do_not_wait_for_a_checkpoint_loading(toolbox, inputs_dir, monkeypatch):
    """Loading held the cache lock, which list_checkpoints reads and so every call naming a checkpoint: while one
    checkpoint loaded (minutes at full size), listing and even a call refused for a bad argument waited for it."""
    import threading

    import worldpolicy
    from worldpolicy.embodiments import get_embodiment

    release, loading = threading.Event(), threading.Event()

    def slow_load(*args, **kwargs):
        loading.set()
        release.wait(60)
        return object()

    monkeypatch.setattr(worldpolicy, "load_policy", slow_load)
    ckpt = toolbox.resolve_checkpoint("tiny")
    loader = threading.Thread(target=toolbox.policy, args=(ckpt, get_embodiment("fractal")))
    loader.start()
    try:
        assert loading.wait(60)
        answered: list = []
        lister = threading.Thread(target=lambda: answered.append(toolbox.list_checkpoints()["checkpoints"]))
        lister.start()
        lister.join(30)  # a guard against hanging, not a timing: held by the load, it never answers before release
        assert answered and answered[0][0]["name"] == "tiny"
    finally:
        release.set()
        loader.join(60)
    assert (str(ckpt), "fractal") in toolbox._policies
    toolbox._policies.pop((str(ckpt), "fractal"))


def test_a_cancelled_call_stops_its_worker_at_the_next_progress_report():
    """A call its client cancelled ran on to its end in the worker thread (the cancel waited for it), holding the
    model: every later model call waited for a result nobody would read."""
    import threading

    from worldpolicy.agents.mcp_server import CallCancelled, _call

    started, go_on, ended = threading.Event(), threading.Event(), threading.Event()
    outcome: list = []

    class Ctx:
        async def report_progress(self, done, total, message):
            pass

    def operation(progress):
        try:
            started.set()
            go_on.wait(60)  # until the call is cancelled
            for step in range(200):
                progress(step, 200, f"denoising step {step}/200")
            outcome.append("ran to the end")
        except CallCancelled as exc:
            outcome.append(str(exc))
        finally:
            ended.set()

    async def run():
        async with anyio.create_task_group() as tg:
            tg.start_soon(_call, None, Ctx(), operation)
            await anyio.to_thread.run_sync(started.wait, 60)
            tg.cancel_scope.cancel()  # as the SDK does on notifications/cancelled
        go_on.set()

    anyio.run(run)
    assert ended.wait(60)  # a guard against hanging, not a timing
    assert outcome == ["cancelled by the client at: denoising step 0/200"], outcome


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False), ("localhost", False)])
def test_http_on_an_address_others_reach_is_warned_of(tmp_path, monkeypatch, capsys, host, warned):
    """The MCP HTTP transport has no authentication: `--host 0.0.0.0` let anyone on the network read files under the
    input roots and run models, and nothing said so."""
    from worldpolicy.agents import mcp_server
    from worldpolicy.cli import main

    monkeypatch.setattr(mcp_server, "run_server", lambda *a, **k: None)
    assert main(["mcp", "--transport", "http", "--host", host, "--port", "0", "--output-dir",
                 str(tmp_path / "runs")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "unauthenticated" in line]
    assert bool(said) == warned and all(f"--host {host}: every client" in line for line in said), said


def test_a_sim_policy_that_fails_to_load_closes_the_env(toolbox, monkeypatch):
    """The env (and its renderer) was opened before the policy loaded and closed only after a load that succeeded."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.sim import env as sim_env

    closed = []
    close = sim_env.TabletopEnv.close
    monkeypatch.setattr(sim_env.TabletopEnv, "close", lambda self: (closed.append(self), close(self)))

    def fail(*args, **kwargs):
        raise FileNotFoundError("weights missing")

    monkeypatch.setattr(toolbox, "policy", fail)
    with pytest.raises(FileNotFoundError, match="weights missing"):
        toolbox.evaluate_sim("reach", "tiny", episodes=1, max_steps=2)
    assert len(closed) == 1


def test_a_sim_evaluation_of_a_checkpoint_runs_the_cached_policy(toolbox, monkeypatch):
    """evaluate_in_sim loaded its checkpoint afresh for every call (minutes at full size) beside the policies the
    cache held, so a device bounded to --max-loaded models held one more. It runs the cached one, as predict does,
    and leaves it loaded for the next call."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    import worldpolicy
    from worldpolicy.sim import policies

    ckpt = toolbox.resolve_checkpoint("tiny")
    own = toolbox._checkpoint_embodiment(ckpt, None, "policy", "tiny")
    cached = toolbox.policy(ckpt, own)

    def load_again(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded again")

    monkeypatch.setattr(worldpolicy, "load_policy", load_again)
    monkeypatch.setattr(policies, "make_policy", load_again)
    result = toolbox.evaluate_sim("reach", "tiny", episodes=1, max_steps=2)
    assert result["episodes"] == 1 and result["embodiment"] == own.key
    assert toolbox.policy(ckpt, own) is cached and cached.embodiment.key == own.key  # still loaded, not closed
    assert cached.engine is not None  # raises once closed


def test_the_sim_tool_runs_a_checkpoint_at_its_embodiment_s_rate(server, toolbox):
    """evaluate_in_sim made its env at 15 Hz whatever the policy: a 10 fps embodiment's actions ran 1.5 times too
    fast, unsaid. A checkpoint runs at its embodiment's rate, as `worldpolicy sim` runs it; random actions, which have
    none, at 15 Hz."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.embodiments import register_embodiment

    ckpt = toolbox.resolve_checkpoint("tiny")
    own = toolbox._checkpoint_embodiment(ckpt, None, "policy", "tiny")
    spec = {k: v for k, v in own.to_spec().items() if k != "aliases"}  # its aliases name its own
    slow = register_embodiment({**spec, "name": "slow_" + own.name, "fps": 10})  # undone after the test
    for args, hz in (({"policy": "tiny", "embodiment": slow.key}, 10.0), ({"policy": "tiny"}, own.fps),
                     ({"policy": "random", "embodiment": slow.key}, 15.0)):
        result = ok(server, "evaluate_in_sim", {**args, "episodes": 1, "max_steps": 2})
        report = json.loads((Path(result["run_dir"]) / "report.json").read_text())
        assert (report["control_hz"], report["policy_fps"]) == (hz, None if "random" in args.values() else hz), args


def test_a_latency_study_through_the_sim_tool(server, toolbox, monkeypatch):
    """evaluate_in_sim took no strategy, latency or rtc, so an agent could not run the robustness-to-latency study
    `worldpolicy sim --strategy async --latency 200 --rtc` runs. They reach the rollout as the command's flags do: the
    result and report.json record the same strategy, latency and rtc (and the hand-over jumps), the model is asked to
    continue the running chunk, and compare_sim_runs lists what differs."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    ckpt = toolbox.resolve_checkpoint("tiny")
    cached = toolbox.policy(ckpt, toolbox._checkpoint_embodiment(ckpt, None, "policy", "tiny"))
    prefixes: list = []
    act = cached.act
    monkeypatch.setattr(cached, "act", lambda *a, **k: (prefixes.append(k.get("action_prefix")), act(*a, **k))[1])
    args = {"policy": "tiny", "episodes": 1, "max_steps": 8, "strategy": "async"}
    clean = ok(server, "evaluate_in_sim", args)
    assert clean["latency"] == {"ms": 0.0, "ticks": 0} and clean["rtc"] is False and prefixes
    assert all(p is None for p in prefixes), prefixes
    prefixes.clear()
    late = ok(server, "evaluate_in_sim", {**args, "latency": 200, "rtc": True})
    # 200 ms at 15 Hz: 3 control steps; async's k for the 4-step chunk is 2, so 3 of the running chunk's rows go along
    assert late["strategy"]["kind"] == "async" and late["strategy"]["execute_steps"] == 2, late["strategy"]
    assert late["latency"] == {"ms": 200.0, "ticks": 3} and late["rtc"] is True, late
    assert [None if p is None else len(p) for p in prefixes][:2] == [None, 3], prefixes  # the first blocks: none
    report = json.loads((Path(late["run_dir"]) / "report.json").read_text())
    assert {k: report[k] for k in SIM_TIMING_FIELDS} == {k: late[k] for k in SIM_TIMING_FIELDS}
    compared = ok(server, "compare_sim_runs", {"runs": [clean["run_dir"], late["run_dir"]]})
    whole = json.loads(Path(compared["files"]["comparison"]).read_text())  # the result is a summary
    assert [(r["latency_ms"], r["rtc"]) for r in whole["runs"]] == [(0.0, False), (200.0, True)]
    assert {"latency.ms", "rtc"} <= {d["setting"] for d in compared["differences"]}, compared["differences"]


def test_the_sim_tool_refuses_rtc_at_a_whole_chunk_latency_before_the_model_loads(toolbox, monkeypatch):
    """`worldpolicy sim` refuses --rtc with a latency of the policy's whole chunk (no request would carry a prefix)
    before the weights load; the tool checked the latency against the chunk without rtc, so the call loaded the model
    and failed in the rollout with no argument named."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    before = set(toolbox.config.output_dir.glob("sim-*"))

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(toolbox, "policy", load)
    # 300 ms at 15 Hz: 5 control steps, past the tiny checkpoint's 4-step chunk
    with pytest.raises(ToolInputError, match=r"at or past the policy's 4-step chunk") as refused:
        toolbox.evaluate_sim("reach", "tiny", episodes=1, max_steps=20, strategy="async", latency=300, rtc=True)
    assert refused.value.parameter == "rtc"
    assert set(toolbox.config.output_dir.glob("sim-*")) == before


def test_the_sim_tool_refuses_a_latency_below_0_before_it_builds_the_env(toolbox, monkeypatch):
    """A latency that is no number >= 0 needs no env to refuse: it was refused only once the run lock was free (after
    another call's episodes) and MuJoCo's scene was built."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.sim import env

    def built(*args, **kwargs):
        raise AssertionError("the env was built before the refusal")

    monkeypatch.setattr(env, "TabletopEnv", built)
    for given in (-5, float("nan"), "200"):
        with pytest.raises(ToolInputError, match=r"expected milliseconds, a finite number >= 0") as refused:
            toolbox.evaluate_sim("reach", "scripted", episodes=1, latency=given)
        assert refused.value.parameter == "latency"


def test_a_latency_under_half_a_step_is_in_the_sim_tools_warnings(server, toolbox):
    """`worldpolicy sim` logs that 20 ms at 15 Hz runs as none (docs/robot.md); an agent reads only the result, whose
    warnings did not say it."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    result = ok(server, "evaluate_in_sim", {"policy": "scripted", "episodes": 1, "max_steps": 5, "latency": 20})
    assert result["latency"] == {"ms": 20.0, "ticks": 0}
    assert "latency: 20 ms is under half a control step at 15 Hz, so it runs as none (0 steps)" in result["warnings"]


def test_the_sim_tool_refuses_an_unknown_strategy_naming_it(toolbox):
    """The MCP schema holds strategy to the three; the toolbox (the Strands tool's way in) names them too."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    for given in ("fast", ["async"]):
        with pytest.raises(ToolInputError) as refused:
            toolbox.evaluate_sim("reach", "scripted", episodes=1, strategy=given)
        assert refused.value.parameter == "strategy" and refused.value.accepted == ["execute", "ensemble", "async"]


@pytest.mark.parametrize("stop", [RuntimeError("renderer lost"), KeyboardInterrupt()])
def test_a_sim_evaluation_that_stops_part_way_leaves_no_run_folder(toolbox, stop):
    """Its sim-* folder is made once the policy loads; a call cancelled (raised at its next progress report, as
    CallCancelled is) or failed after that left it behind, partial and named by no result."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    before = set(toolbox.config.output_dir.glob("sim-*"))

    def progress(done, total, message):
        if message == "episode 1/2 done":
            raise stop

    with pytest.raises(type(stop)):
        toolbox.evaluate_sim("reach", "scripted", episodes=2, max_steps=5, progress=progress)
    assert set(toolbox.config.output_dir.glob("sim-*")) == before
    result = toolbox.evaluate_sim("reach", "scripted", episodes=1, max_steps=5)  # one that ends keeps its folder
    assert set(toolbox.config.output_dir.glob("sim-*")) == before | {Path(result["run_dir"])}


def test_a_folder_of_frames_cannot_link_outside_the_input_roots(server, toolbox, inputs_dir, tmp_path):
    """A frame given as a file was refused when it led outside the input roots; the same link inside a folder of
    frames was read."""
    import shutil

    outside = tmp_path / "outside"
    shutil.copytree(inputs_dir / "frames", outside)
    linked = inputs_dir / "linked_frames"
    linked.mkdir()
    for frame in sorted(outside.iterdir()):
        (linked / frame.name).symlink_to(frame)
    loaded_before = list(toolbox._policies)
    try:
        error = err(server, "infer_actions", {"prompt": "go", "embodiment": "bridge", "video": str(linked)})
    finally:
        shutil.rmtree(linked)
    assert error["parameter"] == "video" and "links to files outside" in error["message"], error
    assert "frame_0.png" in error["message"] and list(toolbox._policies) == loaded_before


def test_a_run_folders_default_video_cannot_link_outside_the_input_roots(server, toolbox, inputs_dir, tmp_path):
    """visualize_actions animates a run's rollout.mp4 when no video is given: a link there to a video outside the input
    roots was read and drawn into the animation, which a given video leading there is refused for."""
    import shutil

    from worldpolicy.embodiments import get_embodiment

    e = get_embodiment("bridge")
    outside = tmp_path / "outside.mp4"
    shutil.copy(inputs_dir / "clip.mp4", outside)
    user_run = inputs_dir / "linked_run"
    user_run.mkdir()
    doc = {"schema": "worldpolicy.actions/v1", "mode": "policy", "embodiment": e.key, "fps": e.fps,
           "columns": list(e.columns), "units": list(e.units), "actions": np.zeros((4, e.action_dim)).tolist()}
    (user_run / "actions.json").write_text(json.dumps(doc))
    (user_run / "rollout.mp4").symlink_to(outside)
    before = set(toolbox.config.output_dir.iterdir())
    try:
        error = err(server, "visualize_actions", {"path": str(user_run)})
        plots_only = ok(server, "visualize_actions", {"path": str(user_run), "animate": False})  # reads no video
    finally:
        shutil.rmtree(user_run)
    assert error["parameter"] == "video" and "links outside the folders" in error["message"], error
    assert error["given"] == str(user_run) and plots_only["animation"] is None
    assert len(set(toolbox.config.output_dir.iterdir()) - before) == 1  # the refused call began no run folder


def test_an_argument_a_tool_does_not_take_is_refused_not_ignored(server, toolbox):
    """The SDK drops arguments a tool has no parameter for: evaluate_in_sim(checkpoint=...) evaluated the scripted
    expert, list_embodiments(chekpoint=...) listed every embodiment, each a result for a call the agent did not make."""
    before = set(toolbox.config.output_dir.iterdir())
    error = err(server, "evaluate_in_sim", {"checkpoint": "tiny", "episodes": 1})
    assert error["parameter"] == "checkpoint" and error["given"] == "tiny", error
    assert "takes no such argument" in error["message"] and "policy" in error["accepted"]
    assert set(toolbox.config.output_dir.iterdir()) == before  # nothing ran
    error = err(server, "list_embodiments", {"chekpoint": "tiny"})
    assert error["parameter"] == "chekpoint" and error["accepted"] == ["checkpoint"]
    assert ok(server, "list_embodiments", {"checkpoint": "tiny"})["embodiments"]  # the arguments it takes still work


def test_a_missing_extra_is_unavailable_not_the_callers_input(server, monkeypatch):
    """evaluate_in_sim on a server without the sim extra answered invalid_input naming `policy`: an agent took it for
    its argument and tried another policy, which needs the same simulator."""
    import builtins

    real_import = builtins.__import__

    def no_mink(name, *args, **kwargs):
        if name == "sim.env":  # toolbox's `from ..sim.env import TabletopEnv`, as on a machine without mink
            raise ModuleNotFoundError("No module named 'mink'", name="mink")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mink)
    error = err(server, "evaluate_in_sim", {"policy": "random", "episodes": 1})
    assert error["type"] == "unavailable" and "parameter" not in error, error
    assert "pip install 'worldpolicy[sim]'" in error["message"]


def test_a_server_without_checkpoints_says_how_to_give_it_some(tmp_path, caplog):
    """`worldpolicy mcp` started without --checkpoint-dir, or on a folder holding none where the listing looks (a
    Hugging Face cache keeps them deeper): every model call said "checkpoint: no checkpoint given", accepted [], which
    neither the agent nor its user can act on. It is said when the toolbox is made, and each call names the setting."""
    from worldpolicy.agents import Toolbox, ToolboxConfig

    (tmp_path / "hub" / "models--nvidia--x" / "snapshots" / "abc").mkdir(parents=True)
    (tmp_path / "hub" / "models--nvidia--x" / "snapshots" / "abc" / "model_index.json").write_text("{}")
    with caplog.at_level("WARNING", logger="worldpolicy.agents.toolbox"):
        toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=[tmp_path / "hub"]))
    assert re.search(r"no checkpoint: .*hub\) hold no checkpoint .*--checkpoint-dir", caplog.text)
    error = err(build_server(toolbox), "predict_actions", {"prompt": "pick", "image": "obs.png"})
    assert error["parameter"] == "checkpoint" and error["accepted"] == []
    assert re.search(r"this server has no checkpoint: .*--checkpoint-dir .*configure\(checkpoint_dirs=", error["message"])
    caplog.clear()
    with caplog.at_level("WARNING", logger="worldpolicy.agents.toolbox"):
        Toolbox(ToolboxConfig(output_dir=tmp_path / "out", checkpoint_dirs=[tmp_path / "hub" / "models--nvidia--x"
                                                                             / "snapshots"]))
    assert caplog.text == ""  # one level down is where the listing looks


def test_a_checkpoint_evicted_from_the_cache_is_released_before_the_next_loads(tiny_checkpoint_dir, tmp_path,
                                                                                monkeypatch):
    """The cache loaded a new policy, then dropped the least recent one without closing it: a server bounded to one
    model held two on the device while it switched (the second could run out of memory), and the dropped one's memory
    came back only at some later garbage collection. It now closes the one it evicts, before loading."""
    import worldpolicy
    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.embodiments import get_embodiment

    made: list = []

    class Loaded:
        def __init__(self) -> None:
            self.live_at_load = sum(not p.closed for p in made)  # models on the device while this one loads
            self.closed = False
            made.append(self)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(worldpolicy, "load_policy", lambda *args, **kwargs: Loaded())
    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path, checkpoint_dirs=[tiny_checkpoint_dir], max_loaded=1))
    ckpt = toolbox.resolve_checkpoint("tiny")
    first = toolbox.policy(ckpt, get_embodiment("bridge"))
    assert toolbox.policy(ckpt, get_embodiment("bridge")) is first and not first.closed  # a hit keeps it
    second = toolbox.policy(ckpt, get_embodiment("umi"))
    assert first.closed and second.live_at_load == 0 and not second.closed
    assert [x["embodiment"] for x in toolbox.list_checkpoints()["loaded"]] == ["umi"]


def test_what_the_checkpoint_says_of_the_inputs_is_in_every_calls_warnings_once(tiny_checkpoint_dir, inputs_dir,
                                                                                 tmp_path):
    """A mode the checkpoint's run gave no weight and frames half the size it was trained on were said by the loaded
    policy once, so only the first call on a cached policy carried them; `worldpolicy predict` says them (and a clip's
    frame rate) before the weights load. Every call's result now carries each, once."""
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig

    checkpoint = tmp_path / "checkpoints" / "trained"
    shutil.copytree(tiny_checkpoint_dir / "tiny", checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {  # `worldpolicy train`'s default
        "checkpoint": "base", "objectives": {"policy": 1.0, "forward_dynamics": 0.0, "inverse_dynamics": 0.0}},
        "frames": {"cameras": {"observation/image": [144, 192]}, "composed": [144, 192]}}))
    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path / "runs", checkpoint_dirs=[checkpoint.parent],
                                    input_roots=[inputs_dir], chunk_size=4, resolution_tier=256, device="cpu"))
    untrained = f"checkpoint {checkpoint.resolve()} was trained with no inverse_dynamics objective"
    small = f"checkpoint {checkpoint.resolve()} was trained on frames of 144x192"
    rate = f"video {inputs_dir / 'clip.gif'} is 16.7 fps but embodiment actions are at 5 fps"  # GIF frames of 60 ms
    base = {"prompt": "go", "embodiment": "bridge", "seed": 0, "steps": 1}
    for _ in range(2):  # the second call runs the policy the first loaded
        warnings = toolbox.infer_actions(**base, video=str(inputs_dir / "clip.gif"))["warnings"]
        assert [sum(w.startswith(m) for w in warnings) for m in (untrained, small, rate)] == [1, 1, 1], warnings
        warnings = toolbox.predict(**base, image=str(inputs_dir / "obs.png"))["warnings"]
        sizes = [w for w in warnings if w.startswith(small)]
        assert len(sizes) == 1 and "but the observation is 72x96 where it was 144x192" in sizes[0], warnings
        assert not any("objective" in w for w in warnings), warnings  # its policy mode was trained


@pytest.fixture(scope="module")
def long_clip(inputs_dir):
    """9 frames at bridge's 5 fps: two windows of chunk_size+1 = 5 frames, sharing frame 4."""
    from worldpolicy.processing.video import write_video

    path = inputs_dir / "long.mp4"
    write_video(path, np.random.default_rng(1).integers(0, 255, (9, 64, 96, 3), dtype=np.uint8), fps=5)
    return path


def test_infer_actions_labels_a_whole_clip_and_reports_progress_over_its_windows(server, long_clip, monkeypatch):
    """`predict --whole-clip` / `Policy.infer_actions(whole_clip=True)` label every frame of a clip; the tool took its
    first chunk_size+1 frames only, so an agent pseudo-labelling a video got 4 actions for 8 transitions. Progress
    counts every window's denoising steps, not each batch's again from 1."""
    from worldpolicy.agents import toolbox as toolbox_module

    monkeypatch.setattr(toolbox_module, "CLIP_BATCH_SIZE", 1)  # two batches: progress runs on across them
    base = {"prompt": "go", "embodiment": "bridge", "video": str(long_clip), "seed": 3, "steps": 1}
    progress: list = []
    whole = ok(server, "infer_actions", {**base, "whole_clip": True}, progress)
    assert np.asarray(whole["actions"]).shape == (8, 10)
    assert whole["clip"]["frames_used"] == list(range(9)) and whole["clip"]["window_rows"] == [4, 4], whole["clip"]
    steps = [(done, total, m) for done, total, m in progress if "denoising" in m]
    assert steps == [(1, 2, "window 1 of 2: denoising step 1/1"), (2, 2, "window 2 of 2: denoising step 1/1")], progress
    assert progress[-1][2] == "done"
    # a window's rows are what start_frame= its first frame gives, with the same seed
    second = ok(server, "infer_actions", {**base, "start_frame": 4})
    assert second["clip"]["start_frame"] == 4 and second["clip"]["frames_used"] == [4, 5, 6, 7, 8]
    np.testing.assert_allclose(whole["actions"][4:], second["actions"], atol=1e-5)
    first = ok(server, "infer_actions", base)  # left out: the first chunk_size+1 frames, as before
    assert np.asarray(first["actions"]).shape == (4, 10) and first["clip"]["frames_used"] == [0, 1, 2, 3, 4]
    assert any("video has more than 5 frames" in w for w in first["warnings"]), first["warnings"]


def test_infer_actions_resamples_a_clip_at_another_rate(server, inputs_dir):
    """A 10 fps clip for bridge (5 fps): without resample each action spans two of its frames (warned); with it, the
    frames nearest the embodiment's timestamps are read, and the warning is not given."""
    from worldpolicy.processing.video import write_video

    path = inputs_dir / "fast.mp4"
    write_video(path, np.random.default_rng(2).integers(0, 255, (9, 64, 96, 3), dtype=np.uint8), fps=10)
    base = {"prompt": "go", "embodiment": "bridge", "video": str(path), "steps": 1}
    plain = ok(server, "infer_actions", base)
    said = [w for w in plain["warnings"] if "is 10 fps but embodiment actions are at 5 fps" in w]
    assert len(said) == 1 and "resample=True" in said[0], plain["warnings"]  # once, though checked and run both say it
    resampled = ok(server, "infer_actions", {**base, "resample": True})
    assert resampled["clip"]["frames_used"] == [0, 2, 4, 6, 8] and resampled["clip"]["resampled"] is True
    assert not any("fps" in w for w in resampled["warnings"]), resampled["warnings"]


@pytest.mark.parametrize("args, parameter, fragment", [
    ({"start_frame": 8}, "start_frame", "at least 2 frames from start_frame=8"),
    ({"start_frame": -1}, "start_frame", "must be an integer >= 0"),
    ({"resample": True, "video": "frames"}, "resample", "does not carry"),
    ({"embodiment": "droid/joint_pos", "whole_clip": True, "state": [0.0] * 8}, "state", "one row per frame"),
])
def test_clip_options_are_checked_before_the_model_loads(server, toolbox, long_clip, inputs_dir, args, parameter,
                                                         fragment, monkeypatch):
    """A start frame past the clip's end, a clip without a rate to resample from, a single state row for windows that
    start from later frames: refused naming the argument, before any checkpoint loads."""
    def no_load(*_, **__):
        raise AssertionError("the checkpoint was loaded")

    monkeypatch.setattr(toolbox, "policy", no_load)
    video = str(inputs_dir / args.pop("video")) if "video" in args else str(long_clip)
    error = err(server, "infer_actions", {"prompt": "go", "embodiment": "bridge", "video": video, **args})
    assert error["parameter"] == parameter and fragment in error["message"], error


def test_a_state_per_frame_labels_a_whole_clip_for_a_state_conditioned_embodiment(toolbox, long_clip):
    """A state-conditioned embodiment's window from frame k starts from frame k's state: `state` takes a row per
    frame for a whole clip, which the tools refused as 'has 72 values'."""
    state = np.tile([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.78, 0.0], (9, 1))
    result = toolbox.infer_actions("go", str(long_clip), "droid/joint_pos", state=state.tolist(), steps=1, seed=0,
                                   whole_clip=True)
    assert np.asarray(result["actions"]).shape == (8, 8) and result["clip"]["window_rows"] == [4, 4]


@pytest.mark.parametrize("suffix", [".csv", ".npz", ".npy"])
def test_imagine_reads_csv_npz_and_npy_actions_files_as_the_command_line_does(server, toolbox, inputs_dir, suffix):
    """`predict --actions` reads .csv and .npz (columns by name) and .npy; `actions_file` took .json only."""
    from worldpolicy.embodiments import get_embodiment

    e = get_embodiment("bridge")
    physical = np.round(np.linspace(-0.02, 0.02, 4 * e.action_dim).reshape(4, e.action_dim), 4)
    physical[:, -1] = [0.0, 1.0, 1.0, 0.0]
    path = toolbox.config.output_dir / f"actions{suffix}"
    order = list(range(e.action_dim))[::-1]  # columns in another order: matched by name
    if suffix == ".csv":
        header = ",".join(e.columns[i] for i in order)
        path.write_text(header + "\n" + "\n".join(",".join(str(row[i]) for i in order) for row in physical) + "\n")
    elif suffix == ".npz":
        np.savez(path, actions=physical[:, order], columns=np.array([e.columns[i] for i in order]))
    else:
        np.save(path, physical)
    result = ok(server, "imagine_rollout", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
                                            "actions_file": str(path), "steps": 1})
    np.testing.assert_allclose(result["actions"], physical, atol=1e-5)


def test_an_actions_file_of_another_type_names_the_ones_read(server, toolbox, inputs_dir):
    path = toolbox.config.output_dir / "actions.txt"
    path.write_text("0 0 0")
    error = err(server, "imagine_rollout", {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
                                            "actions_file": str(path)})
    assert error["parameter"] == "actions_file" and error["accepted"] == [".json", ".npy", ".npz", ".csv"], error


def test_a_sim_evaluation_says_when_its_episodes_are_the_checkpoints_training_scenes(tiny_checkpoint_dir, tmp_path,
                                                                                     server):
    """report.json records whether the episodes were scenes the checkpoint was trained on; the tool's result did not,
    and its seed defaulted to 0 (the scenes `dataset from-sim` records), so an agent reported a checkpoint's success
    on its training data as held-out. The seed now defaults to `worldpolicy sim`'s held-out one, and the result says."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.fileio import TRAINING_SUMMARY_FILE
    from worldpolicy.sim.tasks import EVAL_SEED

    trained = tmp_path / "ckpts" / "trained"
    shutil.copytree(tiny_checkpoint_dir / "tiny", trained)
    (trained / TRAINING_SUMMARY_FILE).write_text(json.dumps({
        "scratch": {"task": "reach", "seed": 0}, "stages": {"dataset": {"episodes": 5, "failed_seeds": []}}}))
    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path / "runs", checkpoint_dirs=[trained.parent],
                                    input_roots=[tmp_path], chunk_size=4, resolution_tier=256, device="cpu"))
    seen = toolbox.evaluate_sim("reach", "trained", episodes=2, seed=3, max_steps=2)
    assert seen["training_scenes"]["seeds"] == [3, 4] and seen["training_scenes"]["recorded_seeds"] == [0, 4]
    assert len(seen["warnings"]) == 1 and "2 of the 2 episodes (seeds 3..4) are reach scenes" in seen["warnings"][0]
    assert f"pass seed={EVAL_SEED}" in seen["warnings"][0]
    held_out = toolbox.evaluate_sim("reach", "trained", episodes=1, max_steps=2)
    assert held_out["seed"] == EVAL_SEED and held_out["training_scenes"]["seeds"] == [] and held_out["warnings"] == []
    scripted = ok(server, "evaluate_in_sim", {"episodes": 1, "max_steps": 2})  # the MCP tool's default too
    assert scripted["seed"] == EVAL_SEED and scripted["training_scenes"] is None and scripted["warnings"] == []


def test_a_sim_evaluations_training_scene_warning_names_the_checkpoint_as_sim_does(tmp_path):
    """The tool named the checkpoint in its training-scene warning by its folder's name (the shipped model's
    `panda_reach`), where `worldpolicy sim`, `dataset eval` and the open-loop tool name it by `models.checkpoint_name`
    (`shipped`): one name for one model."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.models import shipped_model

    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path / "runs", checkpoint_dirs=[shipped_model()],
                                    input_roots=[tmp_path], device="cpu", load_kwargs={"steps": 1}))
    seen = toolbox.evaluate_sim("reach", "shipped", episodes=1, seed=3, max_steps=1)
    assert seen["training_scenes"]["seeds"] == [3], seen["training_scenes"]
    # its report labelled as `worldpolicy sim` labels a run of it (the folder's name `panda_reach` was)
    assert json.loads((Path(seen["run_dir"]) / "report.json").read_text())["policy"] == "shipped"
    assert [w for w in seen["warnings"] if "trained on" in w] == [(
        "1 of the 1 episodes (seed 3) are reach scenes shipped was trained on (the recording in its "
        "training_summary.json recorded seeds 0..900): their success says how well it fits its training data, not how "
        "it does on new scenes; pass seed=10000 for held-out ones")]


def test_imagine_says_once_that_an_actions_file_is_at_another_rate(server, inputs_dir):
    """A 30 Hz actions.json rolled forward at bridge's 5 Hz moves 6x slower: the toolbox read the file with warnings
    off, so the result never said so."""
    from worldpolicy import get_embodiment

    e = get_embodiment("bridge")
    path = inputs_dir / "fast.json"  # where the tools may read
    path.write_text(json.dumps({"schema": "worldpolicy.actions/v1", "embodiment": e.key, "fps": 30.0,
                                "columns": list(e.columns), "actions": [[0.0] * e.action_dim] * 4}))
    fd = ok(server, "imagine_rollout", {"prompt": "pick up the block", "embodiment": "bridge", "seed": 1, "steps": 1,
                                        "image": str(inputs_dir / "obs.png"), "actions_file": str(path)})
    said = [w for w in fd["warnings"] if "its rows are at 30 Hz (its fps), but embodiment 'bridge' runs at 5 Hz" in w]
    assert len(said) == 1, fd["warnings"]


def test_imagine_rolls_out_a_whole_trajectory_and_reports_progress_over_its_chunks(server, inputs_dir):
    """`predict --whole-trajectory` / `Policy.imagine(whole_trajectory=True)` roll out every row; the tool cut 10 rows
    to the first chunk of 4 (with a warning), so an agent replaying a recorded episode saw 4 steps of it. Progress
    counts every chunk's denoising steps, and the result says which rows and frames each chunk made."""
    rows = np.round(np.linspace(-0.01, 0.01, 10 * 10).reshape(10, 10), 4)
    rows[:, 3:9] = [1, 0, 0, 0, 1, 0]  # the identity rotation
    base = {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"), "actions": rows.tolist(),
            "seed": 5, "steps": 1}
    progress: list = []
    whole = ok(server, "imagine_rollout", {**base, "whole_trajectory": True}, progress)
    np.testing.assert_allclose(whole["actions"], rows, atol=1e-5)
    assert whole["video_frames"] == 11 and read_video(whole["files"]["video"])[0].shape[0] == 11
    trajectory = whole["trajectory"]
    assert [c["actions"] for c in trajectory["chunks"]] == [[0, 4], [4, 8], [8, 10]], trajectory
    assert [c["conditioned_on"] for c in trajectory["chunks"]] == [0, 4, 8]
    assert [c["seed"] for c in trajectory["chunks"]] == [5, 6, 7] and trajectory["state_chained"] is False
    steps = [(done, total, m) for done, total, m in progress if "denoising" in m]
    assert steps == [(k, 3, f"chunk {k} of 3: denoising step 1/1") for k in (1, 2, 3)], progress
    assert not any("rows given, using the first" in w for w in whole["warnings"]), whole["warnings"]
    first = ok(server, "imagine_rollout", base)  # left out: the first chunk, as before, and said
    assert np.asarray(first["actions"]).shape == (4, 10) and first["trajectory"] is None
    assert any("10 rows given, using the first 4" in w for w in first["warnings"]), first["warnings"]


def test_a_whole_clip_or_trajectory_over_its_cap_is_refused_before_the_model_loads(toolbox, inputs_dir, long_clip,
                                                                                   monkeypatch):
    """`whole_clip` decoded and held every frame of a clip, `whole_trajectory` imagined every row of an actions file,
    however many: other tools cap what one call does (MAX_OPEN_LOOP_CHUNKS, MAX_DREAM_CHUNKS). Refused naming the
    argument and the cap, the clip's frames counted as they decode (one past the cap), before any model loads."""
    from worldpolicy.agents import toolbox as toolbox_module

    def no_load(*_, **__):
        raise AssertionError("the checkpoint was loaded")

    monkeypatch.setattr(toolbox, "policy", no_load)
    monkeypatch.setattr(toolbox_module, "MAX_CLIP_FRAMES", 8)  # the clip has 9
    with pytest.raises(ToolInputError) as caught:
        toolbox.infer_actions("go", str(long_clip), embodiment="bridge", whole_clip=True)
    assert caught.value.parameter == "whole_clip" and caught.value.given is True
    assert "whole_clip reads at most 8 frames of a clip per call" in str(caught.value)
    assert caught.value.accepted.startswith("false, or a clip of at most 8 frames")
    rows = inputs_dir / "many_rows.npy"
    np.save(rows, np.zeros((33 * 4, 10)), allow_pickle=False)  # bridge's chunk_size is 4: 33 chunks
    with pytest.raises(ToolInputError) as caught:
        toolbox.imagine("go", embodiment="bridge", image=str(inputs_dir / "obs.png"), actions_file=str(rows),
                        whole_trajectory=True)
    assert caught.value.parameter == "whole_trajectory"
    assert "the 132 action rows make 33 chunks of chunk_size=4; one call imagines at most 32" in str(caught.value)
    assert caught.value.accepted == "false, or at most 128 rows (imagine a longer one in parts)"


def test_whole_trajectory_errors_name_it_before_the_model_loads(server, toolbox, inputs_dir, monkeypatch):
    """An embodiment whose state no action says (a state-conditioned relative_pose head) cannot be chained from chunk
    to chunk: refused naming whole_trajectory and what is accepted, as is a value that is not true or false, before
    any checkpoint loads."""
    from dataclasses import replace

    from worldpolicy.embodiments import get_embodiment

    def no_load(*_, **__):
        raise AssertionError("the checkpoint was loaded")

    monkeypatch.setattr(toolbox, "policy", no_load)
    args = {"prompt": "go", "embodiment": "bridge", "image": str(inputs_dir / "obs.png"),
            "actions": np.zeros((6, 10)).tolist()}
    with pytest.raises(ToolInputError) as caught:
        toolbox.imagine(**args, whole_trajectory="yes")
    assert caught.value.to_dict()["parameter"] == "whole_trajectory" and caught.value.given == "yes"
    model = toolbox._model
    stateful = replace(get_embodiment("bridge"), state_history=1)
    monkeypatch.setattr(toolbox, "_model", lambda checkpoint, embodiment: (model(checkpoint, embodiment)[0], stateful))
    error = err(server, "imagine_rollout", {**args, "whole_trajectory": True})
    assert error["parameter"] == "whole_trajectory" and error["given"] is True, error
    assert error["message"].startswith("whole_trajectory: embodiment 'bridge' conditions each chunk on the robot "
                                       "state, and its relative_pose actions do not say the state after a chunk"), error
    assert error["accepted"].startswith("false, or an embodiment whose actions are absolute joint positions"), error


# -- open-loop evaluation and sim-run comparison ------------------------------------------------------------------

OPEN_LOOP = {"checkpoint": "tiny", "embodiment": "pusht", "steps": 1, "action_keys": ["action"]}


def test_open_loop_evaluation_round_trip(server, toolbox, pusht_dataset, monkeypatch):
    from worldpolicy.data import openloop

    progress: list = []
    checks: list = []
    check = openloop.check_open_loop
    monkeypatch.setattr(openloop, "check_open_loop", lambda *a, **k: checks.append(a) or check(*a, **k))
    result = ok(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(pusht_dataset), "episodes": [0, -1],
                                               "seed": 3}, progress)
    assert len(checks) == 1  # the dataset is checked (its every episode's actions read) once, before the model loads
    # chunks of 4 tile each episode: frames 0, 4, 8 of 10 and 0, 4 of 7
    assert [e["starts"] for e in result["episodes"]] == [[0, 4, 8], [0, 4]] and result["chunks"] == 5
    assert result["every"] == 4 and result["steps_compared"] == 17 and result["sampling_steps"] == 1
    assert [(c["column"], c["unit"]) for c in result["columns"]] == [("x", "normalized"), ("y", "normalized")]
    written = json.loads(Path(result["files"]["openloop"]).read_text())
    assert {c["column"]: c["mae"] for c in result["columns"]} == written["mae"]
    assert result["mae_normalized"] == written["mae_normalized"] and written["settings"]["seed"] == 3
    # pusht has no stats: its normalised scale is the values as its model reads them, nothing left out
    assert result["mae_normalized"] == pytest.approx(np.mean([c["mae"] for c in result["columns"]]))
    assert result["normalization"].startswith("mean over columns on the model's normalised scale: no stats")
    for c in result["columns"]:
        assert c["mae_normalized"] == written["mae_normalized_by_column"][c["column"]] == pytest.approx(c["mae"])
        assert c["left_out"] is None and c["recorded_std"] == written["recorded_std"][c["column"]] > 0
    assert [h["chunks"] for h in result["horizon"]] == [5, 5, 4, 3]
    assert all(Path(p).is_file() for p in result["files"]["plots"]) and len(result["files"]["plots"]) == 3
    assert Path(result["episodes"][1]["plot"]).parent == Path(result["run_dir"])
    assert Path(result["run_dir"]).parent == toolbox.config.output_dir
    # progress over the chunks: before each episode's batch (3 chunks, then 2) and at its one denoising step
    assert [done for done, _, m in progress if m.startswith("chunks predicted")] == [0, 3, 3, 5], progress
    assert "chunks predicted: 3 of 5" in [m for _, _, m in progress]
    assert progress[-1] == (5, 5, "done") and all(total == 5 for _, total, _ in progress)
    assert result["mode"] == written["mode"] == "policy" and result["psnr"] is None  # no frame compared


def _imagines_the_recording(policy, monkeypatch) -> list:
    """The cached `policy` answering each forward-dynamics request with the frames `pusht_dataset` recorded after
    the request's (its frames are one grey, 5 * (t + 20 * episode)), on the canvas `Policy` puts 16x16 frames on:
    frames a forward-dynamics evaluation must score as identical."""
    from worldpolicy.processing.observations import canvas_bin

    seen: list = []
    canvas = list(canvas_bin(16, 16, policy.resolution_tier)[1])
    lengths = (10, 7)

    def act_batch(requests, progress=None):
        seen.extend(requests)
        out = []
        for r in requests:
            value = int(r.observation["observation/image"][0, 0, 0])
            episode = int(value >= 100)
            t = value // 5 - 20 * episode
            ahead = np.minimum(t + np.arange(policy.chunk_size + 1), lengths[episode] - 1)  # the last repeated
            grey = (5 * (ahead + 20 * episode)).astype(np.uint8)
            video = np.broadcast_to(grey[:, None, None, None], (len(grey), 16, 16, 3)).copy()
            out.append(SimpleNamespace(video=video, settings={"canvas_hw": canvas}))
        return out

    monkeypatch.setattr(policy, "act_batch", act_batch)
    return seen


def test_forward_dynamics_evaluation_returns_the_frames_errors_as_openloop_json_writes_them(server, toolbox,
                                                                                          pusht_dataset, monkeypatch):
    """mode=forward_dynamics: PSNR, SSIM and MSE per camera and per frame ahead, openloop.json's numbers (an infinite
    PSNR, of identical frames, null as the file writes it), the episodes' videos in the run folder."""
    from worldpolicy.data import LeRobotDataset

    (front,) = LeRobotDataset.open(pusht_dataset).video_keys
    cached = toolbox.policy(toolbox.resolve_checkpoint("tiny"), toolbox._embodiment("pusht"))
    seen = _imagines_the_recording(cached, monkeypatch)
    # a mode the checkpoint's training gave no weight: said in the result (the policy logs it at its first request
    # only, which this one's stand-in makes none of)
    why = "tiny was trained with no forward_dynamics objective"
    monkeypatch.setattr(cached, "_untrained", {"forward_dynamics": why})
    progress: list = []
    result = ok(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(pusht_dataset),
                                               "mode": "forward_dynamics"}, progress)
    assert {r.mode for r in seen} == {"forward_dynamics"}
    # progress in the mode's words: the chunks imagined, not predicted
    assert "chunks imagined: 3 of 5" in [m for _, _, m in progress]
    assert not [m for _, _, m in progress if "predicted" in m], progress
    written = json.loads(Path(result["files"]["openloop"]).read_text())
    assert result["mode"] == written["mode"] == "forward_dynamics"
    assert result["psnr"] == written["psnr"] == {front: None} and result["mse"] == {front: 0.0}
    assert result["ssim"] == written["ssim"] and result["ssim"][front] == pytest.approx(1.0, abs=1e-12)
    assert result["cameras"] == [front] and result["frames_compared"] == written["frames_compared"] == 15
    # per frame ahead 1 .. chunk: the chunks whose episode recorded it (starts 0, 4, 8 of 10; 0, 4 of 7)
    assert result["horizon"] == written["horizon"]
    assert [(h["frames_ahead"], h["chunks"]) for h in result["horizon"]] == [(1, 5), (2, 4), (3, 3), (4, 3)]
    assert [e["starts"] for e in result["episodes"]] == [[0, 4, 8], [0, 4]] and result["chunks"] == 5
    assert all(e["psnr"] == {front: None} for e in result["episodes"])
    videos = [e["video"] for e in result["episodes"]]
    assert videos == result["files"]["videos"] and all(Path(v).parent == Path(result["run_dir"]) for v in videos)
    assert read_video(videos[1])[0].shape == (4 + 2, 16, 48, 3)  # recorded | imagined | abs diff
    assert [Path(p).name for p in result["files"]["plots"]] == ["openloop_summary.png"]
    # the action errors are the other modes' numbers: none here
    assert result["columns"] is None and result["mae_normalized"] is None and result["steps_compared"] is None
    assert result["warnings"] == [why] and written["untrained"] == why


def test_inverse_dynamics_evaluation_runs_the_tiny_checkpoint(server, pusht_dataset):
    """mode=inverse_dynamics, end to end on the tiny checkpoint's weights: the actions recovered from the recorded
    frames against the recorded ones, in the policy mode's fields."""
    progress: list = []
    result = ok(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(pusht_dataset), "episodes": [1],
                                               "mode": "inverse_dynamics"}, progress)
    written = json.loads(Path(result["files"]["openloop"]).read_text())
    assert result["mode"] == written["mode"] == "inverse_dynamics"
    assert "action chunks recovered: 2 of 2" in [m for _, _, m in progress], progress
    assert result["steps_compared"] == written["steps_compared"] == 6  # 7 frames: 6 rows with a next frame
    assert {c["column"]: c["mae"] for c in result["columns"]} == written["mae"] and result["cameras"] is None


def test_a_bad_open_loop_mode_is_refused_naming_it_before_the_model_loads(server, toolbox, pusht_dataset,
                                                                          monkeypatch):
    """By the MCP schema (its enum) and by the toolbox (the Strands tool's arguments meet no schema), each accepting
    the library's modes."""
    from worldpolicy.results import MODES as EVAL_MODES

    monkeypatch.setattr(toolbox, "policy", lambda *a: pytest.fail("the model was loaded"))
    before = set(toolbox.config.output_dir.glob("openloop-*"))
    error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(pusht_dataset), "mode": "world"})
    assert error["parameter"] == "mode" and error["given"] == "world" and error["accepted"] == list(EVAL_MODES)
    for given in ("forward", None):
        with pytest.raises(ToolInputError) as caught:
            toolbox.evaluate_open_loop(str(pusht_dataset), "tiny", "pusht", action_keys=["action"], mode=given)
        assert caught.value.to_dict()["parameter"] == "mode" and caught.value.accepted == list(EVAL_MODES)
        assert caught.value.given == given
    assert set(toolbox.config.output_dir.glob("openloop-*")) == before


def test_an_open_loop_evaluation_warns_of_episodes_that_are_the_checkpoints_training_scenes(tiny_checkpoint_dir,
                                                                                              tmp_path):
    """As `dataset eval` warns (`data.openloop.training_scenes_warning`): a `dataset from-sim` recording's episodes
    that are scenes the checkpoint was trained on are said in the result's warnings, which an agent reads."""
    import shutil

    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.data import write_episodes
    from worldpolicy.fileio import TRAINING_SUMMARY_FILE

    trained = tmp_path / "ckpts" / "trained"
    shutil.copytree(tiny_checkpoint_dir / "tiny", trained)
    (trained / TRAINING_SUMMARY_FILE).write_text(json.dumps({
        "scratch": {"task": "reach", "seed": 0}, "stages": {"dataset": {"episodes": 5, "failed_seeds": []}}}))
    front = "observation.images.front"
    features = {"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                front: {"dtype": "video", "shape": [16, 16, 3]}}
    episodes = [{"frames": {"action": np.zeros((4, 2), np.float32)},
                 "videos": {front: np.zeros((4, 16, 16, 3), np.uint8)}, "task": "push the T"} for _ in range(2)]
    recording = write_episodes(tmp_path / "rec", episodes, fps=10, features=features, video_codec="libx264rgb",
                               provenance={"task": "reach", "seeds": [3, 20000]}).root
    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path / "runs", checkpoint_dirs=[trained.parent],
                                    input_roots=[tmp_path], chunk_size=4, resolution_tier=256, device="cpu"))
    result = toolbox.evaluate_open_loop(str(recording), "trained", "pusht", steps=1, action_keys=["action"])
    assert result["warnings"] == [(
        "1 of the 2 episodes (seed 3) are reach scenes trained was trained on (the recording in its "
        "training_summary.json recorded seeds 0..4): their error says how well it imitates its training data, not how "
        "it does on new scenes; record held-out ones to compare on with `worldpolicy dataset from-sim --task reach "
        "--seed 10000`")]
    held_out = toolbox.evaluate_open_loop(str(recording), "trained", "pusht", episodes=[1], steps=1,
                                          action_keys=["action"])
    assert held_out["warnings"] == []


def test_open_loop_evaluation_does_not_change_the_cached_policy(toolbox, pusht_dataset, sent_requests):
    """The call's steps ride on each request to the cached policy itself: the next predict runs it as it was."""
    ckpt = toolbox.resolve_checkpoint("tiny")
    cached = toolbox.policy(ckpt, toolbox._embodiment("pusht"))
    steps, sent = cached.sampling.steps, sent_requests(cached)
    result = toolbox.evaluate_open_loop(str(pusht_dataset), "tiny", "pusht", chunks=2, steps=2,
                                        action_keys=["action"])
    assert result["chunks"] == 2 and result["every"] is None and result["sampling_steps"] == 2
    assert [r.steps for r in sent] == [2, 2] and cached.sampling.steps == steps != 2
    written = json.loads(Path(result["files"]["openloop"]).read_text())
    assert written["settings"]["sampling"]["steps"] == 2
    assert toolbox.policy(ckpt, toolbox._embodiment("pusht")) is cached


def test_the_dataset_is_checked_before_the_model_loads(server, toolbox, pusht_dataset, inputs_dir, monkeypatch):
    """A dataset at another frame rate, actions it does not hold, NaN in its actions: refused naming the argument
    (`data.openloop.check_open_loop`) with no model loaded and no run folder made."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.data import LeRobotDataset, write_episodes

    monkeypatch.setattr(toolbox, "policy", lambda *a: pytest.fail("the model was loaded"))
    before = set(toolbox.config.output_dir.glob("openloop-*"))
    (camera,) = LeRobotDataset.open(pusht_dataset).video_keys
    features = {"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                camera: {"dtype": "video", "shape": [16, 16, 3]}}
    slow = inputs_dir / "slow_ds"  # pusht's camera and actions at 5 fps
    write_episodes(slow, [{"frames": {"action": np.zeros((6, 2), np.float32)},
                           "videos": {camera: np.zeros((6, 16, 16, 3), np.uint8)}, "task": "push the T"}],
                   fps=5, features=features, video_codec="libx264rgb")
    error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(slow)})
    assert error["parameter"] == "dataset" and "is at 5 fps and embodiment 'pusht'" in error["message"], error
    error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(pusht_dataset), "action_keys": ["nope"]})
    assert error["parameter"] == "action_keys" and "nope" in error["message"], error
    nan = inputs_dir / "nan_ds"
    shutil.copytree(pusht_dataset, nan)
    data = nan / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    actions = table.column("action").to_pylist()
    actions[10 + 2][0] = float("nan")  # episode 1, frame 2
    column = table.column_names.index("action")
    pq.write_table(table.set_column(column, "action", pa.array(actions, table.schema.field("action").type)), data)
    error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(nan)})
    assert error["parameter"] == "action_keys" and "NaN or inf in episode 1 (first at frame 2)" in error["message"]
    assert set(toolbox.config.output_dir.glob("openloop-*")) == before


@pytest.mark.parametrize(("args", "parameter", "fragment"), [
    ({"episodes": [7]}, "episodes", "out of range"),
    ({"every": 0}, "every", ">= 1"),
    ({"every": 2, "chunks": 3}, "chunks", "give one of every"),
    ({"every": 1, "episodes": [0]}, None, None),  # 10 chunks: under the cap (a control, run below)
    ({"action_keys": ["nope"]}, "action_keys", "nope"),
    ({"embodiment": "bridge"}, "dataset", "fps"),
    ({"seed": -1}, "seed", "[0, 2**63)"),
])
def test_open_loop_errors_name_the_argument_and_leave_no_run_folder(server, toolbox, pusht_dataset, args, parameter,
                                                                     fragment):
    before = set(toolbox.config.output_dir.glob("openloop-*"))
    call_args = {**OPEN_LOOP, "dataset": str(pusht_dataset), **args}
    if parameter is None:
        assert ok(server, "evaluate_open_loop", call_args)["chunks"] == 10
        return
    error = err(server, "evaluate_open_loop", call_args)
    assert error["parameter"] == parameter and fragment in error["message"], error
    assert set(toolbox.config.output_dir.glob("openloop-*")) == before


@pytest.mark.parametrize(("option", "value"), [("action_keys", "action"), ("episodes", [True]), ("seed", None),
                                               ("chunks", 2.5)])
def test_untyped_open_loop_arguments_are_refused_by_the_toolbox(toolbox, pusht_dataset, option, value):
    """The Strands tool's arguments are not checked against a schema: the toolbox names them."""
    args = {"dataset": str(pusht_dataset), "checkpoint": "tiny", "embodiment": "pusht", option: value}
    with pytest.raises(ToolInputError) as caught:
        toolbox.evaluate_open_loop(**args)
    assert caught.value.parameter == option


def test_an_open_loop_evaluation_is_bounded_before_the_model_loads(server, toolbox, pusht_dataset, monkeypatch):
    """Counted as the run places its chunks (every frame: 17; 10 spread: 10; more spread than there are frames whose
    whole chunk was recorded: those 11), against the bound of one call."""
    from worldpolicy.agents import toolbox as toolbox_module

    monkeypatch.setattr(toolbox_module, "MAX_OPEN_LOOP_CHUNKS", 10)
    monkeypatch.setattr(toolbox, "policy", lambda *a: pytest.fail("the model was loaded"))
    for args, parameter in (({"every": 1}, "every"), ({"chunks": 12}, "chunks")):
        error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(pusht_dataset), **args})
        assert error["parameter"] == parameter and f"would take {17 if parameter == 'every' else 11} chunks, more " \
            "than the 10" in error["message"], error


def test_open_loop_reads_datasets_only_inside_the_input_roots(server, toolbox, pusht_dataset, inputs_dir, tmp_path):
    import shutil

    outside = tmp_path / "elsewhere"
    shutil.copytree(pusht_dataset, outside)
    error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(outside)})
    assert error["parameter"] == "dataset" and "outside the folders this server may read" in error["message"]
    # a dataset inside the roots whose videos link outside them is refused the same way, before any is read
    linked = inputs_dir / "linked_ds"
    shutil.copytree(pusht_dataset, linked, ignore=shutil.ignore_patterns("videos"))
    (linked / "videos").symlink_to(outside / "videos")
    try:
        error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(linked)})
    finally:
        shutil.rmtree(linked)
    assert error["parameter"] == "dataset" and "links to files outside" in error["message"] and "videos" in \
        error["message"], error
    error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(inputs_dir / "frames")})
    assert error["parameter"] == "dataset" and "meta/info.json" in error["message"], error
    # a folder that is no dataset (no meta/info.json, which the reader refuses before reading anything) is called so
    # without walking it for links first: a home folder given by mistake was walked whole
    not_a_dataset = inputs_dir / "not_a_dataset"
    not_a_dataset.mkdir()
    (not_a_dataset / "elsewhere").symlink_to(outside)
    try:
        error = err(server, "evaluate_open_loop", {**OPEN_LOOP, "dataset": str(not_a_dataset)})
    finally:
        shutil.rmtree(not_a_dataset)
    assert error["parameter"] == "dataset" and "meta/info.json" in error["message"], error


@pytest.mark.parametrize("stop", [RuntimeError("device lost"), KeyboardInterrupt()])
def test_an_open_loop_evaluation_that_stops_part_way_leaves_no_run_folder(toolbox, pusht_dataset, stop):
    """Cancelled (raised at a progress report, as CallCancelled is) or failed once its folder is made."""
    before = set(toolbox.config.output_dir.glob("openloop-*"))

    def progress(done, total, message):
        if message.startswith("chunks predicted") and done >= 3:  # the first episode's 3 chunks predicted
            raise stop

    with pytest.raises(type(stop)):
        toolbox.evaluate_open_loop(str(pusht_dataset), "tiny", "pusht", steps=1, action_keys=["action"],
                                   progress=progress)
    assert set(toolbox.config.output_dir.glob("openloop-*")) == before


def test_compare_sim_runs_round_trip(server, toolbox, inputs_dir, sim_run):
    pytest.importorskip("mujoco", reason="sim extra not installed")
    runs = inputs_dir / "sim_runs"
    a = sim_run(runs / "a", {s: s < 4 for s in range(6)}, training_seeds=[0, 2])
    b = sim_run(runs / "b", {s: s < 1 for s in range(8)})
    result = ok(server, "compare_sim_runs", {"runs": [str(a), str(b)]})
    assert [r["name"] for r in result["runs"]] == ["a", "b"] and result["task"] == "reach"
    assert [(r["successes"], r["episodes"]) for r in result["runs"]] == [(4, 6), (1, 8)]
    (pair,) = result["pairs"]
    assert (pair["shared_seeds"], pair["a_only"], pair["b_only"]) == (6, 3, 0)
    assert pair["verdict"] == "no significant difference" and pair["p_adjusted"] == 0.25
    assert {d["setting"]: d["shown"] for d in result["differences"]}["policy_settings.sampling.steps"] == ["4", "8"]
    assert {d["setting"] for d in result["differences"]} == {"policy", "policy_settings.path",
                                                             "policy_settings.sampling.steps", "episodes"}
    # the training scenes, and the pair's few shared seeds, where an agent reads them
    assert [w.split(":")[0] for w in result["warnings"]] == ["a", "a vs b"], result["warnings"]
    assert "trained on" in result["warnings"][0] and "only 6 shared seeds" in result["warnings"][1]
    assert Path(result["files"]["report"]).is_file() and Path(result["run_dir"]).parent == toolbox.config.output_dir
    # a summary: the whole comparison (each pair's sentence, steps to success, how to read it) is compare.json's
    whole = json.loads(Path(result["files"]["comparison"]).read_text())
    assert whole["pairs"][0]["p_adjusted"] == pytest.approx(pair["p_adjusted"])
    assert "exact McNemar p" in whole["pairs"][0]["line"] and whole["pairs"][0]["steps"]["solved_by_both"] == 1
    _, answer = call(server, "compare_sim_runs", {"runs": [str(a), str(b)]})
    assert len(answer.content[0].text) < 2000 < len(json.dumps(whole)), len(answer.content[0].text)


def test_compare_sim_runs_lists_the_seeds_told_in_other_words(server, toolbox, inputs_dir, sim_run, monkeypatch):
    """The result left out compare.json's `prompts` (each run's wording and outcome where the runs' differ): an agent
    comparing a paraphrased run with a plain one saw no sign of it but a setting. At most MAX_LISTED_PROMPT_SEEDS,
    `reworded_seeds` counting them all."""
    from worldpolicy.agents import toolbox as toolbox_module

    runs = inputs_dir / "sim_runs_reworded"
    a = sim_run(runs / "a", {s: s < 3 for s in range(4)})
    b = sim_run(runs / "b", {s: s < 1 for s in range(4)}, prompt=lambda s: "reach the ball" if s == 0 else f"go {s}")
    result = ok(server, "compare_sim_runs", {"runs": [str(a), str(b)]})
    assert result["reworded_seeds"] == 3 and result["prompts"][0] == {
        "seed": 1, "prompts": ["reach the ball", "go 1"], "success": [True, False]}, result["prompts"]
    whole = json.loads(Path(result["files"]["comparison"]).read_text())
    assert result["prompts"] == whole["prompts"]
    monkeypatch.setattr(toolbox_module, "MAX_LISTED_PROMPT_SEEDS", 2)
    listed = toolbox.compare_sim_runs([str(a), str(b)])
    assert [p["seed"] for p in listed["prompts"]] == [1, 2] and listed["reworded_seeds"] == 3
    alike = ok(server, "compare_sim_runs", {"runs": [str(a), str(sim_run(runs / "c", {0: True}))]})
    assert alike["prompts"] == [] and alike["reworded_seeds"] == 0


def test_a_pairs_verdict_is_the_one_its_line_says():
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.sim.compare import PairedTest

    def pair(a_only, b_only, p, adjusted):
        return PairedTest("a", "b", tuple(range(10)), a_only, b_only, 10 - a_only - b_only, 0, p, "", adjusted, 3)

    assert pair(8, 0, 0.008, 0.02).verdict() == "a is better" and "differ at the 5 % level: a is better" in \
        pair(8, 0, 0.008, 0.02).line()
    assert pair(0, 8, 0.008, 0.02).verdict() == "b is better"
    assert pair(8, 0, 0.008, 0.06).verdict() == "no significant difference"  # the adjusted p is the verdict's
    assert pair(0, 0, None, None).verdict() == "not paired"


def test_a_note_many_pairs_share_is_one_warning():
    """Ten runs of three seeds each warned of their few shared seeds once per pair: 45 times the same sentence."""
    from worldpolicy.agents.toolbox import _pair_notes
    from worldpolicy.sim.compare import PairedTest

    def pair(a, b, note):
        return PairedTest(a, b, (0, 1, 2), 0, 0, 3, 0, 1.0, note)

    few = "only 3 shared seeds: the test can tell apart only runs that differ on nearly every one"
    pairs = [pair("a", "b", few), pair("a", "c", few), pair("b", "c", few), pair("a", "d", "no shared seed"),
             pair("b", "d", "")]
    assert _pair_notes(pairs) == [f"3 of the 5 pairs: {few}", "a vs d: no shared seed"]


def test_compare_sim_runs_errors_name_runs(server, toolbox, inputs_dir, tmp_path, sim_run):
    pytest.importorskip("mujoco", reason="sim extra not installed")
    before = set(toolbox.config.output_dir.glob("compare-*"))
    a = sim_run(inputs_dir / "sim_runs_e" / "a", {0: True, 1: False})
    outside = sim_run(tmp_path / "b", {0: False, 1: True})
    for runs, fragment in (([str(a)], "2 to 10"), ([str(a), str(outside)], "outside the folders"),
                           ([str(a), str(inputs_dir / "frames")], "is not a sim run"),
                           ([str(a), str(a)], "given twice"), ([str(a), str(inputs_dir / "nope")], "does not exist")):
        error = err(server, "compare_sim_runs", {"runs": runs})
        assert error["parameter"] == "runs" and fragment in error["message"], (runs, error)
    assert set(toolbox.config.output_dir.glob("compare-*")) == before


def test_what_reading_the_dataset_logs_is_in_the_open_loop_warnings(toolbox, pusht_dataset, inputs_dir):
    """A feature the reader cannot read (the dataset opens without it) is said where an agent reads it."""
    import shutil

    noted = inputs_dir / "noted_ds"
    shutil.copytree(pusht_dataset, noted)
    info = json.loads((noted / "meta/info.json").read_text())
    info["features"]["observation.audio"] = {"dtype": "float32", "shape": [2, 2]}
    (noted / "meta/info.json").write_text(json.dumps(info))
    result = toolbox.evaluate_open_loop(str(noted), "tiny", "pusht", chunks=1, steps=1, action_keys=["action"])
    assert any("'observation.audio' is not read" in w for w in result["warnings"]), result["warnings"]


# -- dream and show_dataset ---------------------------------------------------------------------------------------

SHIPPED_CAMERAS = ("observation/exterior_image_1_left", "observation/wrist_image_left")
DREAM = {"prompt": "reach the red ball", "chunks": 2, "execute_steps": 3, "seed": 5, "score": "reach"}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A server of the shipped model at one denoising step on the CPU, and one image per camera of it."""
    from PIL import Image

    from worldpolicy.agents import Toolbox, ToolboxConfig

    inputs = tmp_path_factory.mktemp("shipped_inputs")
    rng = np.random.default_rng(0)
    images = {}
    for key in SHIPPED_CAMERAS:
        images[key] = str(inputs / f"{key.rsplit('/', 1)[-1]}.png")
        Image.fromarray(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)).save(images[key])
    toolbox = Toolbox(ToolboxConfig(output_dir=tmp_path_factory.mktemp("shipped_runs"), checkpoint_dirs=["shipped"],
                                    input_roots=[inputs], device="cpu", load_kwargs={"steps": 1}))
    return build_server(toolbox), toolbox, images


def test_dream_writes_the_run_worldpolicy_dream_writes(shipped, tmp_path):
    """The tool runs `sim.world_model.dream` and records its folder with `DreamRecorder`, as the command line does:
    the same seed gives the same actions, dream.json and video as `worldpolicy dream`'s; the result says per chunk its
    rows, frames, both seeds and reward, and progress counts the chunks."""
    from worldpolicy.cli import main
    from worldpolicy.fileio import DREAM_FILE, folder_kind
    from worldpolicy.processing.trajectory import call_seed
    from worldpolicy.viz.run import observation_file

    server, toolbox, images = shipped
    progress: list = []
    result = ok(server, "dream", {**DREAM, "images": images}, progress)
    run = Path(result["run_dir"])
    assert run.parent == toolbox.config.output_dir and folder_kind(run)[0].writer == "dream"
    assert result["video_frames"] == 7 and len(result["actions"]) == 6 and result["chunk_size"] == 4
    assert [c["actions"] for c in result["chunks"]] == [[0, 3], [3, 6]]
    assert [c["frames"] for c in result["chunks"]] == [[1, 4], [4, 7]]
    assert [c["world_model_seed"] for c in result["chunks"]] == [5, 6]  # seed + j
    assert [c["policy_seed"] for c in result["chunks"]] == [call_seed(5, 0), call_seed(5, 1)]
    assert result["rewards"] == [c["reward"] for c in result["chunks"]] and all(r <= 0 for r in result["rewards"])
    assert result["policy"] == result["world_model"] == "shipped" and result["embodiment"] == "panda_reach"  # as listed
    assert all(Path(p).is_file() for k, p in result["files"].items() if k not in ("plots", "observation", "animation"))
    assert result["files"]["plots"] and result["files"]["dream"] == str(run / DREAM_FILE)
    assert result["files"]["observation"] == sorted(str(run / "observation" / Path(p).name) for p in images.values())
    assert [m for _, _, m in progress] == ["loading shipped for panda_reach", "chunk 1 of 2 imagined",
                                           "chunk 2 of 2 imagined", "done"], progress
    settings = json.loads((run / "settings.json").read_text())
    assert settings["command"] == "dream" and set(settings["inputs"]) == {f"images[{k}]" for k in SHIPPED_CAMERAS}
    cameras = [flag for key, path in images.items() for flag in ("--camera", f"{key}={path}")]
    assert main(["dream", "--policy", "shipped", *cameras, "--prompt", DREAM["prompt"], "--chunks", "2",
                 "--execute-steps", "3", "--seed", "5", "--score", "reach", "--steps", "1", "--device", "cpu",
                 "--out", str(tmp_path / "cli")]) == 0
    for name in ("actions.json", DREAM_FILE):
        ours, theirs = (json.loads((folder / name).read_text()) for folder in (run, tmp_path / "cli"))
        assert ours["chunks" if name == DREAM_FILE else "actions"] == \
            theirs["chunks" if name == DREAM_FILE else "actions"], name
    np.testing.assert_array_equal(read_video(run / "rollout.mp4")[0], read_video(tmp_path / "cli" / "rollout.mp4")[0])
    for key in images:  # the start it was given, kept as the command line keeps it
        assert observation_file(run, key).read_bytes() == observation_file(tmp_path / "cli", key).read_bytes(), key


def test_a_dream_cancelled_part_way_leaves_no_run_folder(shipped):
    """Raised at a progress report, as CallCancelled is, once the first chunk is imagined: the run folder, which
    holds that chunk's record by then (`DreamRecorder`, dream_partial/), is removed, so nothing is left."""
    from worldpolicy.fileio import DREAM_PARTIAL_DIR

    _, toolbox, images = shipped
    before = set(toolbox.config.output_dir.glob("dream-*"))
    seen, recorded = [], []

    def progress(done, total, message):
        seen.append(message)
        if message.startswith("chunk 1 "):
            recorded.extend(p for p in toolbox.config.output_dir.glob(f"dream-*/{DREAM_PARTIAL_DIR}/*.mp4")
                            if p.parent.parent not in before)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        toolbox.dream(DREAM["prompt"], 2, images=images, progress=progress)
    assert seen[-1] == "chunk 1 of 2 imagined" and set(toolbox.config.output_dir.glob("dream-*")) == before
    assert len(recorded) == 1 and not recorded[0].exists()  # the chunk recorded was there, and went with its folder


@pytest.mark.parametrize(("args", "parameter", "fragment"), [
    ({"chunks": 0}, "chunks", "[1, 32]"),
    ({"chunks": 33}, "chunks", "[1, 32]"),
    ({"execute_steps": 5}, "execute_steps", "5 is not in 1..4"),
    ({"score": "reach", "prompt": "go"}, "prompt", "score 'reach' scores the ball it names"),
    # a DROID composite's three cameras are not the bands reach reads, as evaluate_in_sim's plan_scorer is told
    ({"score": "reach", "embodiment": "droid/joint_pos"}, "score", ("as 'droid_wrist_top': use a checkpoint "
     "whose embodiment stacks its cameras (the shipped model's panda_reach), or leave score out")),
    ({"world_model": "nope"}, "world_model", "not a checkpoint folder"),
    ({"seed": -1}, "seed", "[0, 2**63)"),
    ({"image": None}, "image", "give exactly one of image"),
])
def test_dream_arguments_are_checked_before_a_model_loads(server, toolbox, inputs_dir, monkeypatch, args, parameter,
                                                          fragment):
    def no_load(*_, **__):
        raise AssertionError("the checkpoint was loaded")

    monkeypatch.setattr(toolbox, "policy", no_load)
    before = set(toolbox.config.output_dir.iterdir())
    call_args = {"prompt": "reach the red ball", "chunks": 1, "embodiment": "bridge",
                 "image": str(inputs_dir / "obs.png"), **args}
    error = err(server, "dream", {k: v for k, v in call_args.items() if v is not None})
    assert error["parameter"] == parameter and fragment in error["message"], error
    assert set(toolbox.config.output_dir.iterdir()) == before


def test_a_dream_needs_a_world_model_that_rolls_chunks_and_shares_the_policys_columns(toolbox, inputs_dir, tmp_path,
                                                                                      monkeypatch):
    """A world model whose state no action says cannot be chained chunk after chunk, one of other columns cannot
    roll the policy's actions, and a second model on a server that keeps one would close the policy: each refused
    naming world_model, before anything loads."""
    from dataclasses import replace

    from worldpolicy.agents import Toolbox, ToolboxConfig
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.testing import make_tiny_checkpoint

    args = {"prompt": "go", "chunks": 1, "image": str(inputs_dir / "obs.png")}
    for name in ("a", "b"):
        make_tiny_checkpoint(tmp_path / "ckpts" / name)
    one = Toolbox(ToolboxConfig(output_dir=tmp_path / "runs", checkpoint_dirs=[tmp_path / "ckpts", "shipped"],
                                input_roots=[inputs_dir], max_loaded=1))
    with pytest.raises(ToolInputError) as caught:
        one.dream(**args, checkpoint="a", world_model="b", embodiment="bridge")
    assert caught.value.parameter == "world_model" and "--max-loaded 2" in caught.value.accepted
    with pytest.raises(ToolInputError) as caught:  # droid's columns (a's default) and panda_reach's
        one.dream(**args, checkpoint="a", world_model="shipped")
    assert caught.value.parameter == "world_model" and "are not the policy's" in str(caught.value)
    assert caught.value.given == "shipped"
    monkeypatch.setattr(toolbox, "policy", lambda *_: pytest.fail("the checkpoint was loaded"))
    stateful = replace(get_embodiment("bridge"), state_history=1)
    model = toolbox._model
    monkeypatch.setattr(toolbox, "_model", lambda checkpoint, embodiment: (model(checkpoint, embodiment)[0], stateful))
    with pytest.raises(ToolInputError) as caught:
        toolbox.dream(**args, embodiment="bridge")
    assert caught.value.parameter == "world_model" and "conditions each chunk on the robot state" in str(caught.value)


def test_show_dataset_round_trip(server, toolbox, pusht_dataset):
    """`dataset show`'s page in a fresh run folder, its summary and each episode's clip and plots in the result, the
    plots as images with show_plots."""
    from worldpolicy.fileio import SHOW_FILE

    tool, result = call(server, "show_dataset", {"dataset": str(pusht_dataset), "episodes": [-1],
                                                 "embodiment": "pusht", "show_plots": True})
    assert not result.is_error, result.content
    shown = result.structured_content
    jsonschema.validate(shown, tool.output_schema)
    assert Path(shown["run_dir"]).parent == toolbox.config.output_dir
    summary = shown["summary"]
    assert (summary["fps"], summary["episodes"], summary["frames"]) == (10, 2, 17)
    assert summary["tasks"] == 1 and summary["task_texts"] == ["push the T"] and summary["embodiment"] == "pusht"
    assert "stats" not in summary and "episode_table" not in summary  # in files.summary, one row per episode
    (episode,) = shown["episodes"]
    assert (episode["episode"], episode["frames"], episode["tasks"]) == (1, 7, ["push the T"])
    assert read_video(episode["videos"]["observation.images.front"])[0].shape[0] == 7
    action = next(p for p in episode["plots"] if p["group"] == "action")
    assert "pusht" in action["shows"] and Path(action["file"]).is_file()
    assert shown["files"]["plots"] == [p["file"] for p in episode["plots"]]
    written = json.loads(Path(shown["files"]["summary"]).read_text())
    assert written["chosen"] == [1] and written["complete"] and Path(shown["files"]["report"]).name == "index.html"
    images = [c for c in result.content if c.type == "image"]
    assert [base64.b64decode(c.data) for c in images] == [Path(p).read_bytes() for p in shown["files"]["plots"]]
    assert (Path(shown["run_dir"]) / SHOW_FILE).is_file()
    first = ok(server, "show_dataset", {"dataset": str(pusht_dataset)})  # default: the first 5, here both
    assert [e["episode"] for e in first["episodes"]] == [0, 1] and first["summary"]["embodiment"] is None


def test_show_dataset_errors_name_the_argument_and_leave_no_run_folder(server, toolbox, pusht_dataset, inputs_dir,
                                                                       tmp_path):
    import shutil

    before = set(toolbox.config.output_dir.glob("show-*"))
    outside = tmp_path / "outside"
    shutil.copytree(pusht_dataset, outside)
    for args, parameter, fragment in (
            ({"episodes": [5]}, "episodes", "5"), ({"episodes": list(range(21))}, "episodes", "1 to 20"),
            ({"embodiment": "bridge"}, "embodiment", "bridge"), ({"embodiment": "nope"}, "embodiment", "unknown"),
            # the shipped model's own, which list_embodiments lists, is read (not "pass its spec file", which a
            # tool refuses): pusht's x, y are no joints of it
            ({"embodiment": "panda_reach"}, "embodiment", "do not map to embodiment 'panda_reach'"),
            ({"embodiment": "Panda_Reach"}, "embodiment", "do not map to embodiment 'panda_reach'"),  # any case
            ({"dataset": str(outside)}, "dataset", "outside the folders"),
            ({"dataset": str(inputs_dir / "frames")}, "dataset", "meta/info.json")):
        error = err(server, "show_dataset", {"dataset": str(pusht_dataset), **args})
        assert error["parameter"] == parameter and fragment in error["message"], (args, error)
        if args == {"embodiment": "nope"}:  # what it accepts, the shipped model's own too, which it reads by name
            assert {"bridge", "panda_reach"} <= set(error["accepted"]), error
    assert set(toolbox.config.output_dir.glob("show-*")) == before

    def cancelled(done, total, message):  # as CallCancelled is raised: show_dataset's one report after its start
        if message == "done":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        toolbox.show_dataset(str(pusht_dataset), [0], progress=cancelled)
    assert set(toolbox.config.output_dir.glob("show-*")) == before


def test_a_listed_hub_snapshot_whose_weights_cannot_be_fetched_is_a_problem_not_a_crash(monkeypatch, tmp_path):
    """`list_checkpoints` says what keeps a checkpoint from loading; a hub snapshot holding only its configs, offline,
    is one such (its weights are fetched by the completeness check), not an exception out of the listing."""
    from worldpolicy.agents import toolbox
    from worldpolicy.engine import loading
    from worldpolicy.hub import HubError

    def offline(checkpoint):
        raise HubError(f"could not fetch checkpoint {checkpoint.name!r} from the Hugging Face hub. Offline?")

    monkeypatch.setattr(loading, "check_checkpoint_complete", offline)
    assert toolbox._load_problem(tmp_path / "snap") == "could not fetch checkpoint 'snap' from the Hugging Face hub. " \
        "Offline?"


def test_the_docs_name_every_file_a_run_result_lists():
    """The results' `files` gained `observation` (the run's camera images) in the schema and the server's
    instructions, while docs/agents.md's lists of them, `PredictionResult`'s and dream's, still ended at `plots`."""
    from worldpolicy.agents.mcp_server import DreamFiles, RunFiles

    text = " ".join((Path(__file__).resolve().parents[2] / "docs" / "agents.md").read_text().split())
    listed = re.findall(r"`files` \{([^}]*)\}", text[text.index("`PredictionResult` (structured"):])[0]
    assert not [f for f in RunFiles.model_fields if f"`{f}`" not in listed], listed
    dream = re.findall(r"`files` \{([^}]*)\}", text[text.index("| `dream` |"):])[0]
    # `animation`: the dream tool animates nothing (always null)
    assert not [f for f in DreamFiles.model_fields if f != "animation" and f"`{f}`" not in dream], dream


def test_an_actions_file_is_read_once_for_its_rows_and_its_rate(tmp_path, monkeypatch):
    """imagine read its actions_file twice: once for the rows (`load_actions`), again for the rate it names
    (`actions_rate_warning`). One read gives both, each message still naming the file."""
    from worldpolicy.agents.toolbox import Toolbox, ToolboxConfig
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.processing import actions

    e = get_embodiment("bridge")
    path = tmp_path / "fast.json"
    path.write_text(json.dumps({"schema": actions.ACTIONS_SCHEMA, "fps": 2 * e.fps, "columns": list(e.columns),
                                "actions": [[0.0] * e.action_dim] * 3}))
    reads, read = [], actions.read_actions_file
    monkeypatch.setattr(actions, "read_actions_file", lambda source: reads.append(source) or read(source))
    rows, space, said = Toolbox(ToolboxConfig(output_dir=tmp_path / "runs", input_roots=[tmp_path]))._actions(
        e, None, str(path))
    assert len(reads) == 1 and rows.shape == (3, e.action_dim) and space == "normalized"
    assert len(said) == 1 and said[0].startswith(f"actions file {str(path)!r}: its rows are at {2 * e.fps:g} Hz")


# -- center_crop: the command line's --no-center-crop ------------------------------------------------------------

AREA = 0.9  # the crop the `cropped` checkpoint's training record says (conftest)
BRIDGE = {"prompt": "pick up the block", "embodiment": "bridge", "seed": 1, "steps": 1}


@pytest.fixture
def crops(monkeypatch):
    """The areas each frame batch the model sees is centre-cropped to (`policy.center_crop`'s calls)."""
    import worldpolicy.policy

    seen: list[float] = []
    crop = worldpolicy.policy.center_crop
    monkeypatch.setattr(worldpolicy.policy, "center_crop", lambda frames, area: seen.append(area) or crop(frames, area))
    return seen


def _settings(result: dict) -> dict:
    return json.loads(Path(result["files"]["settings"]).read_text())


def test_predict_imagine_and_infer_crop_as_recorded_unless_told_not_to(cropped, inputs_dir, crops):
    """The tools had no way to leave an `[augment]` checkpoint's frames whole, which the command line's
    `--no-center-crop` does: a call's false runs the cached policy uncropped for that call only, said in its result
    and settings.json, and the next call crops again."""
    server = build_server(cropped)
    image = str(inputs_dir / "obs.png")
    first = ok(server, "predict_actions", {**BRIDGE, "image": image})
    assert first["center_crop"] == _settings(first)["center_crop"] == AREA and crops == [AREA]
    policy = cropped.policy(cropped.resolve_checkpoint("augmented"), cropped._embodiment("bridge"))
    crops.clear()
    whole = ok(server, "predict_actions", {**BRIDGE, "image": image, "center_crop": False})
    assert whole["center_crop"] is None and _settings(whole)["center_crop"] is None and crops == []
    assert policy.center_crop == AREA  # the cached policy's own, back for the next call
    again = ok(server, "predict_actions", {**BRIDGE, "image": image})
    assert again["center_crop"] == AREA and again["actions"] == first["actions"] and crops == [AREA]
    assert whole["actions"] != first["actions"]  # the model saw other frames
    rollout = ok(server, "imagine_rollout", {**BRIDGE, "image": image, "actions_file": first["files"]["actions"],
                                             "center_crop": False})
    labels = ok(server, "infer_actions", {**BRIDGE, "video": str(inputs_dir / "clip.mp4"), "center_crop": False})
    assert rollout["center_crop"] is None is labels["center_crop"] and crops == [AREA]
    assert _settings(rollout)["center_crop"] is None is _settings(labels)["center_crop"]


@pytest.mark.parametrize("value", ["no", 0, None])
def test_a_center_crop_that_is_no_boolean_is_refused_before_a_model_loads(cropped, inputs_dir, monkeypatch, value):
    monkeypatch.setattr(cropped, "policy", lambda *a: pytest.fail("the model was loaded"))
    for call in (lambda: cropped.predict(**BRIDGE, image=str(inputs_dir / "obs.png"), center_crop=value),
                 lambda: cropped.dream("reach", 1, "augmented", image=str(inputs_dir / "obs.png"),
                                       embodiment="bridge", center_crop=value)):
        with pytest.raises(ToolInputError) as refused:
            call()
        error = refused.value.to_dict()
        assert error["parameter"] == "center_crop" and error["accepted"].startswith("true (crop the frames' centre")
        assert "--no-center-crop" in error["accepted"]


def test_open_loop_and_dream_record_the_crop_they_ran_with(cropped, pusht_dataset, inputs_dir, crops):
    args = {"checkpoint": "augmented", "embodiment": "pusht", "steps": 1, "action_keys": ["action"], "chunks": 1}
    for center_crop, area in ((True, AREA), (False, None)):
        result = cropped.evaluate_open_loop(str(pusht_dataset), **args, center_crop=center_crop)
        written = json.loads(Path(result["files"]["openloop"]).read_text())
        assert result["center_crop"] == written["settings"]["center_crop"] == area
    assert crops == [AREA]  # one chunk cropped, one not
    dreamt = cropped.dream("pick up the block", 1, "augmented", embodiment="bridge", image=str(inputs_dir / "obs.png"),
                           center_crop=False)
    assert dreamt["center_crop"] == {"policy": None, "world_model": None} and crops == [AREA]
    assert _settings(dreamt)["center_crop"] is None


def test_a_sim_evaluation_records_the_crop_and_refuses_it_for_a_baseline(cropped):
    """As `worldpolicy sim --no-center-crop`: report.json's policy_settings.center_crop says the crop the checkpoint
    ran with; the scripted expert and random actions have no frames to crop, and false is refused for them."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    for center_crop, area in ((False, None), (True, AREA)):
        result = cropped.evaluate_sim("reach", "augmented", episodes=1, max_steps=2, center_crop=center_crop)
        report = json.loads((Path(result["run_dir"]) / "report.json").read_text())
        assert result["center_crop"] == report["policy_settings"]["center_crop"] == area
    for policy in ("scripted", "random"):
        with pytest.raises(ToolInputError, match=f"center_crop: applies to checkpoint policies only .*'{policy}'"):
            cropped.evaluate_sim("reach", policy, center_crop=False)
    assert cropped.evaluate_sim("reach", "scripted", episodes=1, max_steps=2)["center_crop"] is None


def test_a_call_that_fails_leaves_the_cached_policy_cropping_as_its_record_says(cropped, inputs_dir, monkeypatch):
    """A call's false holds for that call alone, however it ends: one that fails mid-sampling (here the model
    raising) gives the cached policy back with its own crop, so the next call, which asks nothing, crops as the
    checkpoint's record says."""
    policy = cropped.policy(cropped.resolve_checkpoint("augmented"), cropped._embodiment("bridge"))
    seen = []

    def fail(*args, **kwargs):
        seen.append(policy.center_crop)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(policy, "act_batch", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        cropped.predict(**BRIDGE, image=str(inputs_dir / "obs.png"), center_crop=False)
    assert seen == [None] and policy.center_crop == AREA
    monkeypatch.undo()
    assert cropped.predict(**BRIDGE, image=str(inputs_dir / "obs.png"))["center_crop"] == AREA


def test_sim_evaluation_in_the_users_words(server):
    """`prompt_template` reaches the simulator as `worldpolicy sim --prompt-template` does, refused as it refuses one:
    an unknown placeholder, or beside perturb's prompt=paraphrase, naming the argument and the task's placeholders."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    from worldpolicy.sim.tasks import COLORS

    args = {"task": "reach", "episodes": 1, "max_steps": 5}
    mine = ok(server, "evaluate_in_sim", {**args, "prompt_template": "go to the {color} {object}"})
    assert mine["prompt_template"] == "go to the {color} {object}"
    report = json.loads((Path(mine["run_dir"]) / "report.json").read_text())
    assert report["prompt_template"] == "go to the {color} {object}"
    said = report["episodes"][0]["prompt"]
    assert said.startswith("go to the ") and said.endswith(" ball") and said.split()[3] in COLORS, said
    assert ok(server, "evaluate_in_sim", args)["prompt_template"] is None
    error = err(server, "evaluate_in_sim", {**args, "prompt_template": "go to the {goal}"})
    assert error["parameter"] == "prompt_template" and error["given"] == "go to the {goal}", error
    assert error["accepted"] == ["{color}", "{object}"], error
    assert "unknown placeholder {goal}" in error["message"], error
    error = err(server, "evaluate_in_sim", {**args, "prompt_template": "go to the {color} ball", "perturb": "prompt"})
    assert error["parameter"] == "prompt_template", error
    assert "given with perturb prompt=paraphrase: both reword the prompt" in error["message"], error
