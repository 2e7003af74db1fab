"""The Strands @tool, called directly (no LLM, no model provider)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("strands", reason="strands extra not installed: pip install 'worldpolicy[strands]'")

from worldpolicy.agents import strands_tool


@pytest.fixture
def configured(toolbox, monkeypatch):
    monkeypatch.setattr(strands_tool, "_toolbox", toolbox)
    return toolbox


def _json(result: dict) -> dict:
    assert set(result) == {"status", "content"}
    return result["content"][0]["json"]


def test_tool_spec_documents_every_argument():
    spec = strands_tool.worldpolicy_tool.tool_spec
    assert spec["name"] == "worldpolicy"
    props = spec["inputSchema"]["json"]["properties"]
    assert spec["inputSchema"]["json"]["required"] == ["action"]
    assert set(props["action"]["enum"]) == set(strands_tool.ACTIONS)
    assert all(props[name].get("description") for name in props)  # from the Google-style Args section
    assert "observation" not in props and "progress" not in props


def test_the_perturb_argument_names_every_perturbation_kind():
    """The docstring lists the kinds by hand: a kind added to sim.perturb.PERTURBATIONS must be listed there too."""
    import re

    from worldpolicy.sim.perturb import PERTURBATIONS

    text = strands_tool.worldpolicy_tool.tool_spec["inputSchema"]["json"]["properties"]["perturb"]["description"]
    listed = re.search(r"\(([a-z_]+(?:, [a-z_]+)+)\); default: none", text)
    assert listed is not None, text
    assert listed.group(1).split(", ") == list(PERTURBATIONS)


def test_the_score_argument_says_each_scorers_reward_in_its_own_words():
    """The docstring spells the reward by hand: it must say what `sim.progress.SCORER_REWARDS` says (`dream --help`,
    dream.json's `reward_meaning` and the MCP tool read it from there), for every scorer the tool takes."""
    from worldpolicy.sim.progress import SCORER_REWARDS

    text = strands_tool.worldpolicy_tool.tool_spec["inputSchema"]["json"]["properties"]["score"]["description"]
    text = " ".join(text.split())
    assert all(f'"{name}" ({meaning};' in text for name, meaning in SCORER_REWARDS.items()), text


def test_predict_and_errors_through_the_tool(configured, inputs_dir):
    out = strands_tool.worldpolicy_tool(
        action="predict",
        prompt="push the block",
        embodiment="bridge",
        image=str(inputs_dir / "obs.png"),
        seed=0,
        steps=1,
    )
    assert out["status"] == "success"
    result = _json(out)
    assert len(result["actions"]) == 4 and result["columns"][-1] == "grasp"

    bad = strands_tool.worldpolicy_tool(
        action="imagine", prompt="push", embodiment="bridge", image=str(inputs_dir / "obs.png"), actions=[[0.0] * 3]
    )
    assert bad["status"] == "error"
    error = _json(bad)["error"]
    assert error["parameter"] == "actions" and error["given"] == [1, 3]

    listing = _json(strands_tool.worldpolicy_tool(action="list_checkpoints"))
    assert [c["name"] for c in listing["checkpoints"]] == ["tiny"]


def test_agent_calls_the_tool_without_a_model(configured):
    from strands import Agent

    agent = Agent(tools=[strands_tool.worldpolicy_tool], callback_handler=None)
    result = agent.tool.worldpolicy(action="list_embodiments")
    assert result["status"] == "success"
    keys = [e["key"] for e in result["content"][0]["json"]["embodiments"]]
    assert "droid/joint_pos" in keys and "bridge" in keys


def test_the_tool_animates_plots_and_caps_sim_steps_as_the_mcp_tools_do(configured, inputs_dir):
    """visualize animated only when a video was given (the MCP tool animates by default), and `show_plots` and
    evaluate_sim's `max_steps` were missing."""
    pred = _json(strands_tool.worldpolicy_tool(action="predict", prompt="push", embodiment="bridge",
                                               image=str(inputs_dir / "obs.png"), seed=0, steps=1))
    assert "animation" not in pred["files"]  # predict does not animate unless asked
    shown = strands_tool.worldpolicy_tool(action="visualize", path=pred["run_dir"], show_plots=True)
    assert shown["status"] == "success", shown
    vis = shown["content"][0]["json"]
    assert vis["animation"] is not None and vis["animation"].endswith(".mp4")
    images = shown["content"][1:]
    assert len(images) == len(vis["plots"]) >= 1
    assert all(i["image"]["format"] == "png" and i["image"]["source"]["bytes"].startswith(b"\x89PNG") for i in images)
    plain = strands_tool.worldpolicy_tool(action="visualize", path=pred["run_dir"], animate=False)
    assert _json(plain)["animation"] is None and len(plain["content"]) == 1
    capped = strands_tool.worldpolicy_tool(action="evaluate_sim", max_steps=0)
    assert capped["status"] == "error" and _json(capped)["error"]["parameter"] == "max_steps", capped


def test_the_environment_takes_shipped_and_a_missing_folder_is_a_tool_error(monkeypatch, tmp_path):
    """WORLDPOLICY_CHECKPOINTS=shipped (as `worldpolicy mcp --checkpoint-dir shipped`) and a mistyped folder both
    listed no checkpoint, silently; a bad setting raised out of the tool instead of returning its error."""
    monkeypatch.setattr(strands_tool, "_toolbox", None)
    monkeypatch.setenv("WORLDPOLICY_OUTPUT_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORLDPOLICY_CHECKPOINTS", "shipped")
    listing = _json(strands_tool.worldpolicy_tool(action="list_checkpoints"))
    assert [(c["name"], c["embodiment"]) for c in listing["checkpoints"]] == [("shipped", "panda_reach")]
    [own] = _json(strands_tool.worldpolicy_tool(action="list_embodiments", checkpoint="shipped"))["embodiments"]
    assert own["key"] == "panda_reach" and own["units"][:3] == ["m", "m", "m"]
    monkeypatch.setattr(strands_tool, "_toolbox", None)
    monkeypatch.setenv("WORLDPOLICY_CHECKPOINTS", str(tmp_path / "modles"))
    bad = strands_tool.worldpolicy_tool(action="list_checkpoints")
    assert bad["status"] == "error", bad
    assert "checkpoint_dirs" in _json(bad)["error"]["message"] and "modles" in _json(bad)["error"]["message"]


@pytest.mark.parametrize("action", ["list_embodiments", "predict"])
def test_a_checkpoint_that_is_not_a_name_is_an_error_naming_it(configured, inputs_dir, action):
    """The direct call is not checked against the schema: a list or a number for `checkpoint` came back as
    "unhashable type: 'list'", naming no parameter."""
    inputs = {"prompt": "go", "image": str(inputs_dir / "obs.png")} if action == "predict" else {}
    bad = strands_tool.worldpolicy_tool(action=action, checkpoint=["a"], **inputs)
    error = _json(bad)["error"]
    assert bad["status"] == "error" and error["parameter"] == "checkpoint" and error["accepted"] == ["tiny"], error


def test_configure_again_releases_the_models_of_the_toolbox_it_replaces(tiny_checkpoint_dir, tmp_path, monkeypatch):
    """A notebook that calls configure() again (another device, other folders) kept the replaced toolbox's loaded
    models on the device until some later garbage collection: they are closed as it is replaced."""
    import worldpolicy
    from worldpolicy.embodiments import get_embodiment

    class Loaded:
        closed = False

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(strands_tool, "_toolbox", None)
    monkeypatch.setattr(worldpolicy, "load_policy", lambda *args, **kwargs: Loaded())
    first = strands_tool.configure(checkpoint_dirs=[tiny_checkpoint_dir], output_dir=tmp_path)
    loaded = first.policy(first.resolve_checkpoint("tiny"), get_embodiment("bridge"))
    second = strands_tool.configure(checkpoint_dirs=[tiny_checkpoint_dir], output_dir=tmp_path)
    assert loaded.closed and first.list_checkpoints()["loaded"] == [] and second is strands_tool._current()


def test_an_argument_the_action_does_not_read_is_refused_not_ignored(configured):
    """evaluate_sim given checkpoint=... evaluated the scripted expert (policy's default) and reported its success
    rate; a prompt given to visualize was dropped as quietly."""
    import inspect

    taken = {name for names in strands_tool.ARGUMENTS.values() for name in names}
    assert set(strands_tool.ARGUMENTS) == set(strands_tool.ACTIONS)
    assert taken == set(inspect.signature(strands_tool.worldpolicy_tool).parameters) - {"action"}
    error = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", checkpoint="tiny", episodes=1))["error"]
    assert error["parameter"] == "checkpoint" and error["given"] == "tiny"
    assert "does not apply to action 'evaluate_sim'" in error["message"] and "policy" in error["accepted"]
    error = _json(strands_tool.worldpolicy_tool(action="list_checkpoints", prompt="go"))["error"]
    assert error["parameter"] == "prompt" and error["accepted"] == []
    # an argument left at its default is not one given: the listing runs
    assert strands_tool.worldpolicy_tool(action="list_checkpoints", task="reach")["status"] == "success"


def test_the_tool_takes_the_clip_options_and_the_held_out_sim_seed(configured, inputs_dir):
    """infer_actions' start_frame/whole_clip/resample (as `predict --start-frame/--whole-clip/--resample`) reach the
    toolbox, another action refuses them, and evaluate_sim left without a seed ran seed 0 (`seed or 0`), the scenes
    `dataset from-sim` records, where the MCP tool and `worldpolicy sim` default to the held-out one."""
    from worldpolicy.sim.tasks import EVAL_SEED

    gif = str(inputs_dir / "clip.gif")  # 3 frames: one window, from frame 1 two of them
    inferred = _json(strands_tool.worldpolicy_tool(action="infer_actions", prompt="go", embodiment="bridge", video=gif,
                                                   start_frame=1, whole_clip=True, steps=1))
    assert inferred["clip"]["frames_used"] == [1, 2] and len(inferred["actions"]) == 1, inferred
    stray = _json(strands_tool.worldpolicy_tool(action="predict", prompt="go", embodiment="bridge",
                                                image=str(inputs_dir / "obs.png"), whole_clip=True))["error"]
    assert stray["parameter"] == "whole_clip" and "does not apply to action 'predict'" in stray["message"], stray
    pytest.importorskip("mujoco", reason="sim extra not installed")
    sim = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=1, max_steps=2))
    assert sim["seed"] == EVAL_SEED and sim["training_scenes"] is None, sim


def test_the_tool_takes_whole_trajectory_for_imagine_only(configured, inputs_dir):
    """imagine's whole_trajectory (as `predict --whole-trajectory`) reaches the toolbox: 6 rows of bridge's chunk 4
    roll out in two chunks; another action refuses it."""
    rows = np.zeros((6, 10))
    rows[:, 3:9] = [1, 0, 0, 0, 1, 0]
    imagined = _json(strands_tool.worldpolicy_tool(action="imagine", prompt="go", embodiment="bridge",
                                                   image=str(inputs_dir / "obs.png"), actions=rows.tolist(),
                                                   whole_trajectory=True, steps=1))
    assert len(imagined["actions"]) == 6 and imagined["video_frames"] == 7, imagined
    assert [c["frames"] for c in imagined["trajectory"]["chunks"]] == [[1, 5], [5, 7]]
    stray = _json(strands_tool.worldpolicy_tool(action="predict", prompt="go", embodiment="bridge",
                                                image=str(inputs_dir / "obs.png"), whole_trajectory=True))["error"]
    assert stray["parameter"] == "whole_trajectory" and "does not apply to action 'predict'" in stray["message"]


def test_the_tool_evaluates_open_loop_and_compares_sim_runs(configured, pusht_dataset, inputs_dir, sim_run):
    """evaluate_open_loop takes a list of episodes where evaluate_sim takes a count (its default still 2);
    compare_sim_runs reads the runs evaluate_sim writes."""
    evaluated = _json(strands_tool.worldpolicy_tool(action="evaluate_open_loop", dataset=str(pusht_dataset),
                                                    checkpoint="tiny", embodiment="pusht", episodes=[1], chunks=2,
                                                    steps=1, action_keys=["action"], show_plots=True))
    assert [e["episode"] for e in evaluated["episodes"]] == [1] and evaluated["chunks"] == 2, evaluated
    assert evaluated["seed"] == 0 and [c["column"] for c in evaluated["columns"]] == ["x", "y"]
    # the unit-free error (pusht has no stats: the values as its model reads them) and each column's
    assert evaluated["mae_normalized"] == pytest.approx(np.mean([c["mae_normalized"] for c in evaluated["columns"]]))
    assert "no stats" in evaluated["normalization"] and all(c["left_out"] is None for c in evaluated["columns"])
    assert "mae_over_std" not in evaluated and all("recorded_std" in c for c in evaluated["columns"])
    slow = _json(strands_tool.worldpolicy_tool(action="evaluate_open_loop", dataset=str(pusht_dataset),
                                               checkpoint="tiny", embodiment="bridge", chunks=2, steps=1,
                                               action_keys=["action"]))["error"]
    assert slow["parameter"] == "dataset" and "fps" in slow["message"], slow
    stray = _json(strands_tool.worldpolicy_tool(action="predict", prompt="go", dataset=str(pusht_dataset)))["error"]
    assert stray["parameter"] == "dataset" and "does not apply to action 'predict'" in stray["message"]
    # mode: the library's modes (`results.MODES`), told apart by the toolbox (no schema checks it here)
    from worldpolicy.results import MODES as EVAL_MODES

    bad_mode = _json(strands_tool.worldpolicy_tool(action="evaluate_open_loop", dataset=str(pusht_dataset),
                                                   checkpoint="tiny", embodiment="pusht", mode="forward"))["error"]
    assert bad_mode["parameter"] == "mode" and bad_mode["accepted"] == list(EVAL_MODES), bad_mode
    stray = _json(strands_tool.worldpolicy_tool(action="dream", prompt="go", chunks=1, mode="forward_dynamics"))
    assert stray["error"]["parameter"] == "mode" and "does not apply to action 'dream'" in stray["error"]["message"]
    runs = [sim_run(inputs_dir / "strands_runs" / name, {0: True, 1: name == "a"}) for name in ("a", "b")]
    compared = _json(strands_tool.worldpolicy_tool(action="compare_sim_runs", runs=[str(r) for r in runs]))
    assert [r["successes"] for r in compared["runs"]] == [2, 1] and len(compared["pairs"]) == 1, compared
    error = _json(strands_tool.worldpolicy_tool(action="compare_sim_runs", runs=[str(runs[0])]))["error"]
    assert error["parameter"] == "runs" and "2 to 10" in error["message"]
    sim = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", max_steps=2))
    assert sim["episodes"] == 2, sim


def test_the_tool_dreams_and_shows_a_dataset(configured, pusht_dataset, inputs_dir):
    """dream (seed left out: 0, as `worldpolicy dream`) and show_dataset reach the toolbox with their arguments;
    world_model and execute_steps are dream's alone."""
    dreamt = _json(strands_tool.worldpolicy_tool(action="dream", prompt="go", chunks=2, embodiment="bridge",
                                                 image=str(inputs_dir / "obs.png"), execute_steps=2))
    assert dreamt["seed"] == 0 and [c["actions"] for c in dreamt["chunks"]] == [[0, 2], [2, 4]], dreamt
    assert dreamt["rewards"] is None and dreamt["video_frames"] == 5
    error = _json(strands_tool.worldpolicy_tool(action="dream", prompt="go", chunks=1, embodiment="bridge",
                                                image=str(inputs_dir / "obs.png"), world_model="nope"))["error"]
    assert error["parameter"] == "world_model" and error["given"] == "nope", error
    stray = _json(strands_tool.worldpolicy_tool(action="predict", prompt="go", execute_steps=2))["error"]
    assert stray["parameter"] == "execute_steps" and "does not apply to action 'predict'" in stray["message"]
    shown = _json(strands_tool.worldpolicy_tool(action="show_dataset", dataset=str(pusht_dataset), episodes=[0],
                                                show_plots=True))
    assert [e["episode"] for e in shown["episodes"]] == [0] and shown["summary"]["fps"] == 10, shown
    error = _json(strands_tool.worldpolicy_tool(action="show_dataset", dataset=str(pusht_dataset), episodes=[7]))
    assert error["error"]["parameter"] == "episodes", error
    # the tool's arguments are not typed: a list for embodiment is refused naming it, not a bare "unhashable type"
    error = _json(strands_tool.worldpolicy_tool(action="show_dataset", dataset=str(pusht_dataset), embodiment=["x"]))
    assert error["error"]["parameter"] == "embodiment", error


def test_the_tool_takes_the_chunk_timing_for_evaluate_sim_only(configured, inputs_dir):
    """strategy, latency and rtc (as `worldpolicy sim --strategy/--latency/--rtc`) reach evaluate_sim, checked as the
    MCP tool checks them; another action refuses them rather than ignoring them."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    sim = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=1, max_steps=5, strategy="async",
                                              latency=100))
    # 100 ms at 15 Hz is 1.5 control steps: 2, halves up
    assert sim["strategy"]["kind"] == "async" and sim["latency"] == {"ms": 100.0, "ticks": 2}, sim
    assert sim["rtc"] is False
    refused = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=1, rtc=True))["error"]
    assert refused["parameter"] == "rtc" and "only the 'async' strategy" in refused["message"], refused
    stray = _json(strands_tool.worldpolicy_tool(action="predict", prompt="go", embodiment="bridge",
                                                image=str(inputs_dir / "obs.png"), latency=100))["error"]
    assert stray["parameter"] == "latency" and "does not apply to action 'predict'" in stray["message"], stray


def test_the_tool_takes_plan_for_evaluate_sim_only(configured, inputs_dir):
    """plan and plan_scorer (as `worldpolicy sim --plan/--plan-scorer` and the MCP tool's) reach evaluate_sim and are
    checked there before anything runs; another action refuses them rather than ignoring them."""
    pytest.importorskip("mujoco", reason="sim extra not installed")
    before = set(configured.config.output_dir.iterdir())
    refused = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=1, plan=4))["error"]
    assert (refused["parameter"], refused["given"]) == ("plan", 4) and "'scripted'" in refused["message"], refused
    refused = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=1, plan=17))["error"]
    assert refused["parameter"] == "plan" and "from 2 to 16" in refused["accepted"], refused
    refused = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=1, plan_scorer="reach"))["error"]
    assert refused["parameter"] == "plan_scorer" and "no plan= is given" in refused["message"], refused
    assert set(configured.config.output_dir.iterdir()) == before  # refused before a run folder was begun
    stray = _json(strands_tool.worldpolicy_tool(action="dream", prompt="go", chunks=1, plan=4))["error"]
    assert stray["parameter"] == "plan" and "does not apply to action 'dream'" in stray["message"], stray


def test_a_call_past_the_time_limit_is_a_timeout_error_and_leaves_no_run(configured, monkeypatch):
    """The MCP server bounds a call (--call-timeout) and the Strands tool did not: a long evaluate_sim held the agent
    without end. Past `configure`'s call_timeout_s the call stops at its next progress report, removes its run
    folder and is the MCP server's `timeout` error."""
    from types import SimpleNamespace

    pytest.importorskip("mujoco", reason="sim extra not installed")
    reports = []  # the clock passes the limit at the second progress report (after the first episode)
    monkeypatch.setattr(strands_tool, "time", SimpleNamespace(monotonic=lambda: 0.0 if len(reports) < 2 else 99.0))
    monkeypatch.setattr(strands_tool, "_call_timeout_s", 60.0)
    real = configured.evaluate_sim

    def counted(*args, progress, **kwargs):
        def report(done, total, message):
            reports.append(message)
            progress(done, total, message)
        return real(*args, progress=report, **kwargs)

    monkeypatch.setattr(configured, "evaluate_sim", counted)
    before = set(configured.config.output_dir.iterdir())
    error = _json(strands_tool.worldpolicy_tool(action="evaluate_sim", episodes=2, max_steps=5))["error"]
    assert error["type"] == "timeout" and error["limit_s"] == 60.0, error
    assert "limit of 60 s a call (the Strands tool's `configure(call_timeout_s=...)`)" in error["message"], error
    assert "was stopped, its run folder removed; it had reached: episode 1/2 done" in error["message"], error
    assert reports == ["simulating 2 episodes of reach", "episode 1/2 done"], reports
    assert set(configured.config.output_dir.iterdir()) == before


@pytest.mark.parametrize("limit", [0, -1.0, float("nan"), float("inf"), True, "60"])
def test_configure_refuses_a_time_limit_that_is_not_seconds(limit, tmp_path, monkeypatch):
    monkeypatch.setattr(strands_tool, "_toolbox", None)
    with pytest.raises(ValueError, match=r"call_timeout_s=.*; accepted: seconds > 0, or None \(no limit\)"):
        strands_tool.configure(output_dir=tmp_path, call_timeout_s=limit)
    assert strands_tool._toolbox is None  # nothing replaced


def test_the_tool_passes_center_crop_to_the_actions_that_run_a_model(cropped, inputs_dir, monkeypatch):
    """As the MCP tools take it (`--no-center-crop`'s choice): refused for an action that runs no model."""
    monkeypatch.setattr(strands_tool, "_toolbox", cropped)
    out = strands_tool.worldpolicy_tool(action="predict", prompt="pick up the block", embodiment="bridge", seed=1,
                                        steps=1, image=str(inputs_dir / "obs.png"), center_crop=False)
    assert out["status"] == "success" and out["content"][0]["json"]["center_crop"] is None
    refused = strands_tool.worldpolicy_tool(action="visualize", path=str(inputs_dir), center_crop=False)
    error = refused["content"][0]["json"]["error"]
    assert error["parameter"] == "center_crop" and "does not apply to action 'visualize'" in error["message"]
    spec = strands_tool.worldpolicy_tool.tool_spec["inputSchema"]["json"]["properties"]["center_crop"]
    assert "--no-center-crop" in spec["description"]
