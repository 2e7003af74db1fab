"""The agent operations as one Strands `@tool` (optional extra `strands`): `Agent(tools=[worldpolicy_tool])`.

Configure where checkpoints live and where runs go with `configure(...)` (or the `WORLDPOLICY_CHECKPOINTS` /
`WORLDPOLICY_OUTPUT_DIR` environment variables) before the agent calls it, and how long a call may run
(`call_timeout_s`, as `worldpolicy mcp --call-timeout`). Results are Strands tool results whose content is one JSON
block; errors have `status: "error"` and the same structured error as the MCP server.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal, get_args

from ..extras import extra_imports

with extra_imports():
    from strands import tool

from .toolbox import (
    DEFAULT_CALL_TIMEOUT_S,
    CallTimeout,
    Progress,
    Toolbox,
    ToolboxConfig,
    ToolInputError,
    check_call_timeout,
    error_payload,
    plot_images,
)

__all__ = ["ACTIONS", "ARGUMENTS", "configure", "worldpolicy_tool"]

ActionName = Literal[
    "list_embodiments",
    "list_checkpoints",
    "list_world_models",
    "predict",
    "imagine",
    "infer_actions",
    "visualize",
    "evaluate_sim",
    "evaluate_open_loop",
    "compare_sim_runs",
    "dream",
    "show_dataset",
]
ACTIONS = get_args(ActionName)
_SAMPLING = ("seed", "steps", "guidance")
# The arguments each action reads. Another one given is refused, not ignored: an evaluate_sim given checkpoint=...
# evaluated the scripted expert, and the agent took its success rate for the checkpoint's.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "list_embodiments": ("checkpoint",),
    "list_checkpoints": (),
    "list_world_models": (),
    "predict": ("prompt", "embodiment", "checkpoint", "image", "images", "state", *_SAMPLING, "decode_video",
                "animate", "show_plots", "center_crop"),
    "imagine": ("prompt", "embodiment", "checkpoint", "image", "images", "actions", "actions_file", "state",
                *_SAMPLING, "animate", "show_plots", "whole_trajectory", "center_crop"),
    "infer_actions": ("prompt", "video", "embodiment", "checkpoint", "state", *_SAMPLING, "animate", "show_plots",
                      "start_frame", "whole_clip", "resample", "center_crop"),
    "visualize": ("path", "video", "animate", "show_plots"),
    "evaluate_sim": ("task", "policy", "embodiment", "episodes", "seed", "max_steps", "perturb", "prompt_template",
                     "strategy", "latency", "rtc", "num_envs", "plan", "plan_scorer", "center_crop"),
    "evaluate_open_loop": ("dataset", "checkpoint", "embodiment", "episodes", "every", "chunks", "seed", "steps",
                           "action_keys", "state_keys", "show_plots", "center_crop", "mode"),
    "compare_sim_runs": ("runs",),
    "dream": ("prompt", "chunks", "checkpoint", "world_model", "embodiment", "image", "images", "state", "seed",
              "execute_steps", "score", "show_plots", "center_crop"),
    "show_dataset": ("dataset", "episodes", "embodiment", "show_plots"),
}
_lock = threading.Lock()
_toolbox: Toolbox | None = None
_call_timeout_s: float | None = DEFAULT_CALL_TIMEOUT_S
TIMEOUT_SETTING = "the Strands tool's `configure(call_timeout_s=...)`"  # where a `timeout` error says it is set


def configure(config: ToolboxConfig | None = None, call_timeout_s: float | None = DEFAULT_CALL_TIMEOUT_S,
              **kwargs: Any) -> Toolbox:
    """Set the toolbox the tool uses: a `ToolboxConfig`, or its fields as keyword arguments, and each call's time
    limit (`call_timeout_s` seconds, None: none; `worldpolicy mcp --call-timeout`'s default): an action that reports
    progress is stopped at its first report past it, its run folder removed, and answered with a `timeout` error.
    The toolbox it replaces releases its loaded models (`Toolbox.close`)."""
    global _toolbox, _call_timeout_s
    check_call_timeout(call_timeout_s)
    toolbox = Toolbox(config or ToolboxConfig(**kwargs))
    with _lock:
        replaced, _toolbox, _call_timeout_s = _toolbox, toolbox, call_timeout_s
    if replaced is not None:
        replaced.close()
    return toolbox


def _current() -> Toolbox:
    global _toolbox
    with _lock:
        if _toolbox is None:
            dirs = [Path(p) for p in os.environ.get("WORLDPOLICY_CHECKPOINTS", "").split(os.pathsep) if p]
            out = Path(os.environ.get("WORLDPOLICY_OUTPUT_DIR", "worldpolicy_runs"))
            _toolbox = Toolbox(ToolboxConfig(output_dir=out, checkpoint_dirs=dirs))
        return _toolbox


def _deadline(limit_s: float | None) -> Progress | None:
    """The progress callback that stops a call at its first report past `limit_s` seconds from now (`CallTimeout`,
    as the MCP server's `--call-timeout` stops one); None: no limit."""
    if limit_s is None:
        return None
    end = time.monotonic() + limit_s

    def progress(done: float, total: float | None, message: str) -> None:
        if time.monotonic() > end:
            raise CallTimeout(limit_s, TIMEOUT_SETTING, message)

    return progress


@tool(name="worldpolicy")
def worldpolicy_tool(
    action: ActionName,
    prompt: str | None = None,
    embodiment: str | None = None,
    checkpoint: str | None = None,
    image: str | None = None,
    images: dict[str, str] | None = None,
    video: str | None = None,
    actions: list[list[float]] | None = None,
    actions_file: str | None = None,
    state: list[float] | list[list[float]] | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    decode_video: bool = False,
    animate: bool | None = None,
    show_plots: bool = False,
    path: str | None = None,
    task: str = "reach",
    policy: str = "scripted",
    episodes: int | list[int] | None = None,
    max_steps: int | None = None,
    perturb: str | None = None,
    prompt_template: str | None = None,
    strategy: str = "execute",
    latency: float = 0.0,
    rtc: bool = False,
    num_envs: int = 1,
    plan: int | None = None,
    plan_scorer: str | None = None,
    start_frame: int = 0,
    whole_clip: bool = False,
    resample: bool = False,
    whole_trajectory: bool = False,
    dataset: str | None = None,
    every: int | None = None,
    chunks: int | None = None,
    action_keys: list[str] | None = None,
    state_keys: list[str] | None = None,
    runs: list[str] | None = None,
    world_model: str | None = None,
    execute_steps: int | None = None,
    score: str | None = None,
    center_crop: bool = True,
    mode: str = "policy",
) -> dict[str, Any]:
    """Robot world-model tools (Cosmos3): predict actions, imagine rollouts, infer actions from video, plot them.

    Args:
        action: what to do. list_embodiments / list_checkpoints / list_world_models: discover; predict: what should
            the robot do (prompt + image or images [+ state]); imagine: what happens if it executes actions
            (prompt + image + actions or actions_file [+ whole_trajectory]); infer_actions: which actions produced
            a video (prompt + video: a clip, animated GIF or folder of frames [+ start_frame, whole_clip,
            resample]); visualize: plot an actions file or run directory (path [+ video]); evaluate_sim: short
            MuJoCo evaluation (task, policy, episodes [+ seed, max_steps, perturb, prompt_template, strategy,
            latency, rtc, num_envs, plan, plan_scorer]; its training_scenes and warnings say when episodes are
            scenes the checkpoint was trained on: then not a held-out success rate);
            evaluate_open_loop: a checkpoint's predicted chunks against a LeRobot dataset's recorded actions, per
            column in physical units, and mae_normalized to compare checkpoints by (dataset [+ episodes, every or
            chunks, seed, steps, action_keys, state_keys, mode]; not success: evaluate_sim is that);
            compare_sim_runs: finished sim runs side by side, each pair tested on the seeds both ran, the seeds told
            in other words listed with each run's prompt (runs); dream: the policy run closed loop in a world
            model's imagination, no simulator (prompt + image or images + chunks [+ world_model, seed,
            execute_steps, score]);
            show_dataset: a page of a LeRobot dataset, its summary and each episode's clips and plots (dataset
            [+ episodes, embodiment]).
        prompt: task description, e.g. "put the cup in the sink".
        embodiment: embodiment key from list_embodiments, e.g. "droid" or "bridge" (default: the checkpoint's own,
            shown by list_checkpoints).
        checkpoint: checkpoint name from list_checkpoints (optional when there is only one); list_embodiments: list
            only the embodiment that checkpoint runs with by default; dream: the policy's.
        image: observation image file (single camera). File and folder arguments (image, images, video,
            actions_file, path, dataset, runs) lie under list_checkpoints' input_roots (a relative path from the
            first).
        images: camera key to image file, for multi-camera embodiments.
        video: infer_actions: the clip, a video file (mp4, mov, mkv, avi, webm), an animated GIF/WebP/TIFF or a
            folder of frames (name order); visualize: a video to animate beside the plot (default: the run's
            rollout.mp4).
        actions: [T, action_dim] actions in physical units for imagine, the embodiment's columns in order (T other
            than chunk_size is cut or its last row repeated, with a warning).
        actions_file: for imagine: actions.json from an earlier call, or a .csv (header of column names, optionally
            'tx [m]'), .npz (named arrays) or .npy (rows in physical units); columns matched by name.
        state: current state for state-conditioned embodiments (e.g. DROID joints + gripper); infer_actions from a
            later start_frame or with whole_clip: one row per clip frame.
        seed: sampling seed; evaluate_sim: the first episode's seed (episode i: seed + i; default 10000, past the
            scenes `dataset from-sim` records from 0, which a checkpoint may have been trained on);
            evaluate_open_loop: episode i's chunks are sampled with seed + i (default 0); dream: the world model's
            chunk j samples with seed + j, the policy's with call_seed(seed, j) (default 0).
        steps: denoising steps.
        guidance: classifier-free guidance scale.
        decode_video: predict: also decode the imagined future video.
        animate: also write an mp4 with a playhead on the action plot beside the video (default: yes for visualize,
            no for predict, imagine and infer_actions).
        show_plots: predict, imagine, infer_actions, visualize, evaluate_open_loop, dream, show_dataset: also return
            the plot images, to look at them.
        path: actions.json or run directory for visualize.
        task: evaluate_sim task: reach, push or pick_place.
        policy: evaluate_sim policy: checkpoint name, scripted or random.
        episodes: evaluate_sim: the episode count (1-20, default 2); evaluate_open_loop: the dataset's episodes to
            evaluate on, indexes from 0 (negative from the end; default: all); show_dataset: the episodes to show
            (1-20 indexes; default: the first 5).
        max_steps: evaluate_sim cap on control steps per episode.
        perturb: evaluate_sim: shifts on top of every scene, as `worldpolicy sim --perturb` takes them, e.g.
            "light=0.5" or "camera=0.03,distractors=2" (camera, light, table, distractors, prompt); default: none.
        prompt_template: evaluate_sim: every episode's prompt in your words, as `worldpolicy sim --prompt-template`:
            the task's placeholders {color} and {object} (push, pick_place: also {goal_color}, {goal}) filled per
            episode, e.g. "move to the {color} {object}"; not with perturb's prompt (default: the task's wording).
        strategy: evaluate_sim: how the policy's chunks run, as `worldpolicy sim --strategy`: execute (default),
            ensemble or async.
        latency: evaluate_sim: simulated inference time of each request in ms, as `worldpolicy sim --latency`
            (default 0: none); compare with a latency-0 run of the same seed by compare_sim_runs.
        rtc: evaluate_sim: real-time chunking, as `worldpolicy sim --rtc` (strategy async, a checkpoint policy).
        num_envs: evaluate_sim: episodes stepped together, their model requests batched, as `worldpolicy sim
            --num-envs` (a checkpoint policy, any strategy; default 1).
        plan: evaluate_sim: best-of-N planning with a checkpoint, as `worldpolicy sim --plan`: each chunk chosen
            among N sampled ones (2-16) by the score of the future the model imagines for it (num_envs 1, no rtc;
            default: none, the plain policy); the result's plan counts its decisions, those tied and those changed.
        plan_scorer: evaluate_sim: with plan, what ranks the imagined futures, as `worldpolicy sim --plan-scorer`:
            "reach" (the default; the score's meaning is under score).
        start_frame: infer_actions: explain the clip from this frame (from 0).
        whole_clip: infer_actions: label every frame transition of the clip (from start_frame), in windows of
            chunk_size+1 frames: one action row per transition (the result's clip says which frames).
        resample: infer_actions: read a clip recorded at another rate than the embodiment's fps at that rate (a
            video file or an animated GIF with frame durations).
        whole_trajectory: imagine: roll out every action row, in chunks of chunk_size rows, each from the last
            frame the one before imagined (the result's trajectory says which rows and frames each chunk made;
            errors compound over the chunks); a state-conditioned embodiment needs absolute joint actions.
        dataset: evaluate_open_loop: a LeRobot dataset folder (holds meta/info.json) at the embodiment's fps;
            show_dataset: the dataset to show.
        every: evaluate_open_loop: predict a chunk every N frames (default: the chunk size, tiling each episode).
        chunks: evaluate_open_loop: instead of every, N chunks spread evenly over the episodes; dream: the chunks to
            dream (1-32).
        action_keys: evaluate_open_loop: the dataset features holding the recorded actions (default: those the
            checkpoint's training run read, where the dataset has them all; else the ones `dataset from-sim` writes,
            or `action` where it is the dataset's one action feature).
        state_keys: evaluate_open_loop: state features for a state-conditioned embodiment (default: those the
            checkpoint's training run read, where the dataset has them all; else observation.state, else the
            observation.state.* features).
        runs: compare_sim_runs: 2 to 10 finished sim run folders of one task (evaluate_sim's run_dir).
        world_model: dream: the world model's checkpoint name (default: the policy's, one model in both roles).
        execute_steps: dream: the first K actions of each chunk are imagined before the policy acts again (default:
            the whole chunk).
        score: dream: score each chunk's imagined frames, "reach" (minus the ball-to-gripper distance in the
            chunk's last imagined frame, in view widths, averaged over the views (0: the gripper touches the ball; a
            view where the ball, or in an exterior view the robot, is not found counts 0.25 (-0.25: found in no
            view)); the prompt names the ball's colour); default: no reward.
        center_crop: predict, imagine, infer_actions, evaluate_sim (a checkpoint), evaluate_open_loop, dream: false
            leaves the frames whole where the checkpoint was trained with [augment] and its record says to crop
            their centre (the command line's --no-center-crop; docs/training.md, Image augmentation); default true:
            crop them as the record says. The result's center_crop: the share of each frame's area the crop kept
            (null: the frames whole).
        mode: evaluate_open_loop: what is compared with the recording, as `worldpolicy dataset eval --mode`: policy
            (default: predicted chunks against the recorded actions), inverse_dynamics (actions recovered from the
            recorded frames, the same fields) or forward_dynamics (frames imagined under the recorded actions against
            the recorded frames: psnr, ssim, mse per camera and per frame ahead in horizon, null for an infinite
            PSNR; a video per episode).
    """
    given = {name: value for name, value in locals().items() if name != "action"}  # first: the arguments only
    progress = _deadline(_call_timeout_s)  # the actions that report progress stop there past the time limit
    sampling = {"seed": seed, "steps": steps, "guidance": guidance}
    # left out: each operation's own default (visualize animates, the others do not), as the MCP tools have it
    animation = {} if animate is None else {"animate": animate}
    calls = {
        "list_embodiments": lambda: tb.list_embodiments(checkpoint),
        "list_checkpoints": lambda: tb.list_checkpoints(),
        "list_world_models": lambda: tb.list_world_models(),
        "predict": lambda: tb.predict(
            prompt, embodiment, checkpoint, image, images, state, **sampling, decode_video=decode_video,
            **animation, progress=progress, center_crop=center_crop
        ),
        "imagine": lambda: tb.imagine(prompt, embodiment, checkpoint, image, images, actions, actions_file, state,
                                      **sampling, **animation, whole_trajectory=whole_trajectory, progress=progress,
                                      center_crop=center_crop),
        "infer_actions": lambda: tb.infer_actions(prompt, video, embodiment, checkpoint, state, **sampling,
                                                  **animation, start_frame=start_frame, whole_clip=whole_clip,
                                                  resample=resample, progress=progress, center_crop=center_crop),
        "visualize": lambda: tb.visualize(path, video, **animation),
        "evaluate_sim": lambda: tb.evaluate_sim(task, policy, embodiment, max_steps=max_steps, perturb=perturb,
                                                prompt_template=prompt_template,
                                                strategy=strategy, latency=latency, rtc=rtc, num_envs=num_envs,
                                                plan=plan, plan_scorer=plan_scorer, progress=progress,
                                                center_crop=center_crop,
                                                **({} if episodes is None else {"episodes": episodes}),
                                                **({} if seed is None else {"seed": seed})),
        "evaluate_open_loop": lambda: tb.evaluate_open_loop(dataset, checkpoint, embodiment, episodes, every, chunks,
                                                            steps=steps, action_keys=action_keys,
                                                            state_keys=state_keys, progress=progress,
                                                            center_crop=center_crop, mode=mode,
                                                            **({} if seed is None else {"seed": seed})),
        "compare_sim_runs": lambda: tb.compare_sim_runs(runs),
        "dream": lambda: tb.dream(prompt, chunks, checkpoint, world_model, embodiment, image, images, state,
                                  execute_steps=execute_steps, score=score, progress=progress,
                                  center_crop=center_crop,
                                  **({} if seed is None else {"seed": seed})),
        "show_dataset": lambda: tb.show_dataset(dataset, episodes, embodiment, progress=progress),
    }
    try:
        tb = _current()  # the calls above read it: a bad WORLDPOLICY_CHECKPOINTS is a tool error like any other
        if action not in calls:
            raise ToolInputError("action", "unknown action", action, list(ACTIONS))
        stray = sorted(name for name, value in given.items()
                       if name not in ARGUMENTS[action] and value != _DEFAULTS[name])
        if stray:
            raise ToolInputError(stray[0], f"does not apply to action {action!r}", given[stray[0]],
                                 list(ARGUMENTS[action]))
        result: dict[str, Any] = calls[action]()
        images = plot_images(result) if show_plots else []
        return {"status": "success", "content": [{"json": result},
                                                 *({"image": {"format": "png", "source": {"bytes": data}}}
                                                   for data in images)]}
    except Exception as exc:  # noqa: BLE001 - any failure becomes a structured tool error
        return {"status": "error", "content": [{"json": {"error": error_payload(exc)}}]}


# each argument's default: one left at it is not given, whatever the action
_DEFAULTS = {name: p.default for name, p in inspect.signature(worldpolicy_tool).parameters.items()}
