"""`worldpolicy mcp`: the agent operations as an MCP server (stdio or streamable HTTP).

Written against the MCP Python SDK 2.x `MCPServer` (pinned `mcp>=2.1.1,<2.2` in the `agents` extra: strands-agents
caps mcp below 2.2, and 1.x's FastMCP API differs). Tools take typed arguments and return typed, structured results
with file paths; a bad argument comes back as a tool error whose structured content is `{"error": {...}}` naming the
parameter, and never stops the server. Model calls run in a worker thread and report denoising progress.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

from ..extras import extra_imports

with extra_imports():  # before anyio, pydantic and mcp_types, which mcp brings: a missing mcp names its extra
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
with extra_imports():
    import anyio
    import anyio.from_thread
    import anyio.to_thread
    from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
    from pydantic import BaseModel, Field, ValidationError

from ..embodiments import MODEL_SPACE_UNIT
from ..planning import PLAN_CANDIDATES
from ..results import MODES
from ..sim.perturb import perturbation_help
from ..sim.progress import SCORER_REWARDS, SCORERS
from ..sim.tasks import EVAL_SEED
from .toolbox import (
    COMPARED_RUNS,
    DREAM_CHUNKS,
    GUIDANCE,
    MAX_LISTED_PROMPT_SEEDS,
    MAX_LISTED_TASKS,
    OPEN_LOOP_CHUNKS,
    OPEN_LOOP_EVERY,
    SEED,
    SHOWN_EPISODES,
    SIM_EPISODES,
    SIM_STEPS,
    START_FRAME,
    STEPS,
    CallTimeout,
    Range,
    Toolbox,
    ToolboxConfig,
    ToolInputError,
    check_call_timeout,
    error_payload,
    plot_images,
)

logger = logging.getLogger(__name__)

__all__ = ["MAX_REQUEST_BODY_BYTES", "build_server", "run_server"]

MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
INSTRUCTIONS = (
    "Video world-model robot policies (Cosmos3). list_embodiments gives action columns/units and the camera/state "
    "keys an observation needs (with checkpoint=NAME: the one that checkpoint uses); list_checkpoints the models "
    "and the folders file arguments may name (input_roots; a relative path from the first). "
    "predict_actions answers 'what should the robot do?', imagine_rollout 'what happens if it does this?' "
    "(whole_trajectory=true: every action row, chunk after chunk), infer_actions 'which actions produced this "
    "video?' (whole_clip=true: a label for every frame). Results name the "
    "files written (actions.json, rollout.mp4, plots, observation images, index.html report) and carry warnings "
    "about the inputs, which "
    "may make a result wrong (evaluate_in_sim's: episodes that were training scenes); visualize_actions plots any "
    "actions file. evaluate_open_loop measures a checkpoint's predicted chunks against a LeRobot dataset's recorded "
    "actions (per-column MAE/RMSE in physical units, mae_normalized on the model's normalised scale to compare "
    "checkpoints by; not success: evaluate_in_sim is that test; mode=forward_dynamics: imagined against recorded "
    "frames, PSNR/SSIM per camera; mode=inverse_dynamics: actions recovered from the frames); "
    "compare_sim_runs puts finished sim runs (their run_dir) side by side with a paired test on shared seeds (a "
    "summary: the whole comparison is in its files). "
    "dream runs a policy closed loop in a world model's imagination (no simulator; rewards per chunk with score); "
    "show_dataset writes a page of a LeRobot dataset (its summary, each episode's clips and plots). "
    "Errors come back as "
    "{'error': {type, parameter, message, given, accepted}}."
)

# what a result says of the frames' centre crop, as the run's files record it
CROPPED = ("the share of each frame's area the centre crop the model saw kept (a checkpoint trained with [augment], "
           "as its record says; null: the frames whole)")


# -- result schemas -------------------------------------------------------------------------------------------


class EmbodimentInfo(BaseModel):
    key: str = Field(description="what the tools' `embodiment` takes")
    domain: str
    layout: str = Field(description="relative_pose (per-step end-effector deltas), joint_position, ...")
    action_dim: int = Field(description="columns per action row")
    chunk_size: int = Field(description="action rows per prediction")
    fps: float = Field(description="action rows per second (Hz)")
    columns: list[str]
    units: list[str] = Field(description=f"each column's unit; {MODEL_SPACE_UNIT!r}: the model's own space (no "
                             "published stats), which no robot can run")
    gripper_column: str | None
    camera_keys: list[str] = Field(description="the `images` keys of an observation (an embodiment that composes "
                                   "its cameras also takes their composite as one `image`)")
    state_keys: dict[str, str]
    needs_state: bool = Field(description="predict/imagine/infer need `state`: the current values of `columns`")
    description: str
    source: str = Field(description="registry; shipped model NAME (its own embodiment.json); or, asked for a "
                        "checkpoint's, checkpoint NAME (embodiment.json)")
    checkpoint: str | None = Field(description="the checkpoint this embodiment comes with, as list_checkpoints names "
                                   "it (null: a registry entry, or a shipped model this server does not serve)")


class EmbodimentList(BaseModel):
    embodiments: list[EmbodimentInfo]


class CheckpointInfo(BaseModel):
    name: str = Field(description="what the tools' `checkpoint` takes: the folder name, with its parent folders when "
                      "another listed checkpoint has the same name (a/final, b/final)")
    path: str
    size_mb: float
    embodiment: str | None = Field(description="the embodiment used when a call leaves `embodiment` out")
    problem: str | None = Field(default=None, description="why this checkpoint cannot be used, if it cannot")


class LoadedPolicy(BaseModel):
    checkpoint: str = Field(description="as list_checkpoints names it, what the tools' `checkpoint` takes back")
    embodiment: str


class CheckpointList(BaseModel):
    checkpoints: list[CheckpointInfo]
    checkpoint_dirs: list[str]
    input_roots: list[str] = Field(description="the folders the tools read files from (images, videos, actions, "
                                   "datasets, sim runs); a relative path is taken from the first")
    loaded: list[LoadedPolicy]
    max_loaded: int


class RunFiles(BaseModel):
    actions: str | None = Field(description="actions.json (schema worldpolicy.actions/v1)")
    settings: str | None
    video: str | None = Field(description="rollout.mp4, the imagined video: always for imagine_rollout, for "
                              "predict_actions with decode_video; infer_actions decodes none (null)")
    report: str | None = Field(description="index.html: self-contained run report")
    plots: list[str]
    observation: list[str] = Field(description="observation/<camera>.png: the image of each camera the run started "
                                   "from, as the model read it (none for infer_actions, given a clip)")
    animation: str | None = None


class ClipInfo(BaseModel):
    start_frame: int = Field(description="the clip frame the first row starts from (frames counted from 0)")
    frames_used: list[int] = Field(description="the clip frames the rows go between: row i from frames_used[i] to "
                                   "frames_used[i+1] (resampled: the frames nearest the embodiment's timestamps)")
    clip_fps: float | None = Field(description="the clip's own frame rate, where its file carries one")
    resampled: bool
    window_rows: list[int] = Field(description="rows of each window of chunk_size+1 frames that explain clip frames")


class ChunkInfo(BaseModel):
    actions: list[int] = Field(description="[a, b]: the action rows this chunk rolled out, actions[a:b]")
    frames: list[int] = Field(description="[a+1, b+1]: the video frames it imagined (frame i+1 follows action i)")
    conditioned_on: int = Field(description="the video frame it started from: 0, the observation, for chunk 0; "
                                "else the previous chunk's last imagined frame (where drift can begin)")
    seed: int = Field(description="its sampling seed: the call's seed + j for chunk j")


class TrajectoryInfo(BaseModel):
    rows: int = Field(description="action rows given, all rolled out")
    chunks: list[ChunkInfo]
    state_chained: bool = Field(description="a state-conditioned embodiment's chunk j > 0 started from the previous "
                                "chunk's last action as the state")


class PredictionResult(BaseModel):
    mode: str
    embodiment: str
    checkpoint: str = Field(description="as list_checkpoints names it, what the tools' `checkpoint` takes back")
    run_dir: str
    files: RunFiles
    columns: list[str]
    units: list[str]
    fps: float = Field(description="the actions' rate (Hz), the embodiment's: for infer_actions true of the clip only "
                       "where it was recorded at that rate or resample is on (see warnings)")
    chunk_size: int
    actions: list[list[float]] = Field(description="[chunk_size, action_dim] in physical units, see columns/units "
                                       "(infer_actions with whole_clip: one row per frame transition of the clip; "
                                       "imagine_rollout with whole_trajectory: every row given)")
    video_frames: int | None
    seed: int | None
    center_crop: float | None = Field(default=None, description=CROPPED)
    timings_s: dict[str, float]
    warnings: list[str] = Field(default_factory=list, description="what about the inputs may make the result wrong, "
                                "and how to fix it (e.g. one camera's image for a multi-camera embodiment)")
    clip: ClipInfo | None = Field(default=None, description="infer_actions: which frames of the clip the rows explain")
    trajectory: TrajectoryInfo | None = Field(default=None, description="imagine_rollout with whole_trajectory: "
                                              "which rows and frames each chunk made")


class VisualizationResult(BaseModel):
    plots: list[str]
    animation: str | None
    report: str | None = None


class SimFiles(BaseModel):
    report: str = Field(description="index.html: the run's page")
    episodes: str = Field(description="episodes.csv: a row per episode (its seed, success, steps, final distance, "
                          "...), for a spreadsheet or pandas")
    outputs: list[str] = Field(description="every file written: report.json, report.md, episodes.csv, "
                               "episodes.jsonl, report.png")


class TrainingScenes(BaseModel):
    task: str = Field(description="the task of the recording the checkpoint was trained on")
    source: str = Field(description="where its training data says so (its dataset, or its training summary)")
    recorded_seeds: list[int] = Field(description="the first and last scene seed recorded")
    seeds: list[int] = Field(description="this run's episode seeds among the training scenes ([]: all held out)")


class SimStrategy(BaseModel):
    kind: Literal["execute", "ensemble", "async"]
    execute_steps: int = Field(description="k: the actions of each chunk run before the next takes over")
    ensemble_decay: float = Field(description="ensemble's weight exp(-decay * i) of the i-th oldest chunk")
    execute_steps_requested: int | None = Field(description="the k asked for (null: the strategy's own for the chunk)")


class SimLatency(BaseModel):
    ms: float = Field(description="the time each request was taken to think (0: none)")
    ticks: int = Field(description="ms as the whole control steps it ran as (nearest, halves up)")


class SimPlan(BaseModel):
    candidates: int = Field(description="chunks sampled per decision")
    decisions: int = Field(description="chunks chosen by planning, over all episodes")
    tied: int = Field(description="decisions where every candidate scored the same: the first, the plain policy's own "
                      "sample, ran, so planning bought nothing")
    changed: int = Field(description="decisions where another candidate than the plain policy's own sample ran")


class SimResult(BaseModel):
    task: str
    policy: str = Field(description="scripted, random, or the checkpoint as list_checkpoints names it")
    embodiment: str | None = Field(description="the action space the policy acted in (scripted: droid/joint_pos)")
    episodes: int
    seed: int = Field(description="the first episode's seed (episode i: seed + i)")
    perturb: str | None = Field(default=None, description="the shifts the scenes ran under (canonical spec); null: "
                                "the scenes as drawn")
    prompt_template: str | None = Field(default=None, description="every episode's prompt in these words, the "
                                        "task's placeholders filled (report.json's); null: the task's wording")
    num_envs: int = Field(default=1, description="episodes that were in flight at once, their requests batched "
                          "(report.json's): no setting of the results")
    strategy: SimStrategy = Field(description="how the policy's chunks ran (report.json's)")
    latency: SimLatency
    rtc: bool = Field(description="real-time chunking: async's requests continued the running chunk")
    mean_handover_jump_rad: float | None = Field(
        description="the largest joint's target change where a newer chunk took over, episodes' means averaged; "
        "null where there was no hand-over")
    max_handover_jump_rad: float | None
    mean_chunk_jump_rad: float | None = Field(
        description="the same from step to step within a chunk: hand-over jumps well above it are two plans meeting")
    max_chunk_jump_rad: float | None
    plan: SimPlan | None = Field(default=None, description="best-of-N planning's decisions (report.json's `plan`); "
                                 "null: the plain policy, no plan asked")
    center_crop: float | None = Field(default=None, description=f"{CROPPED}: report.json's "
                                      "policy_settings.center_crop; null too for scripted and random")
    successes: int
    success_rate: float
    ci95: list[float] | None
    training_scenes: TrainingScenes | None = Field(description="whether the episodes are scenes the checkpoint was "
                                                   "trained on (report.json's); null: not known (scripted or random, "
                                                   "or a checkpoint whose training data does not say)")
    warnings: list[str] = Field(default_factory=list, description="training scenes among the episodes: their success "
                                "rate is not a held-out one; say so when reporting it")
    run_dir: str
    files: SimFiles


class ColumnError(BaseModel):
    column: str
    unit: str
    mae: float = Field(description="mean absolute error over every step compared, in `unit`")
    rmse: float
    mae_normalized: float | None = Field(description="the MAE on the model's normalised action scale (the "
                                         "embodiment's training stats: see normalization); null for a column left "
                                         "out (left_out says why)")
    left_out: str | None = Field(description="why this column has no mae_normalized and is not in the overall one "
                                 "(null: it is in)")
    recorded_std: float = Field(description="for information: the recorded actions' standard deviation over the steps "
                                "compared (0: the column does not move there)")


class HorizonStep(BaseModel):
    step: int = Field(description="k: the k-th action of a chunk (from 0)")
    chunks: int = Field(description="chunks that reached it (one that runs past an episode's end stops short)")
    mae: dict[str, float] | None = Field(description="column → MAE at this step (null: no chunk reached it)")


class EpisodeError(BaseModel):
    episode: int
    frames: int
    chunks: int
    starts: list[int] = Field(description="the frames a chunk was predicted from")
    steps_compared: int
    mae: dict[str, float] = Field(description="column → MAE over this episode's steps")
    rmse: dict[str, float]
    plot: str | None = Field(description="its figure: predicted chunks over the recorded actions")


# per camera (its dataset key), as openloop.json writes it: null for a PSNR of identical frames (infinite; MSE 0)
PerCamera = dict[str, float | None]


class FrameHorizonStep(BaseModel):
    frames_ahead: int = Field(description="k: the k-th imagined frame after the start frame (from 1)")
    chunks: int = Field(description="chunks that reached it (one that runs past an episode's end stops short)")
    psnr: PerCamera | None = Field(description="camera → PSNR dB at this frame (null: no chunk reached it)")
    ssim: PerCamera | None
    mse: PerCamera | None


class FrameEpisodeError(BaseModel):
    episode: int
    frames: int
    chunks: int
    starts: list[int] = Field(description="the frames each chunk was imagined from")
    frames_compared: int
    psnr: PerCamera
    ssim: PerCamera
    video: str | None = Field(description="its video: recorded | imagined | abs diff, chunk after chunk")


class OpenLoopFiles(BaseModel):
    openloop: str = Field(description="openloop.json: settings and every number here (`worldpolicy dataset eval`'s)")
    plots: list[str] = Field(description="the summary figure, then (policy, inverse_dynamics) one per episode")
    videos: list[str] | None = Field(default=None, description="forward_dynamics: one per episode")


class OpenLoopResult(BaseModel):
    checkpoint: str = Field(description="as list_checkpoints names it, what the tools' `checkpoint` takes back")
    embodiment: str
    dataset: str
    mode: Literal[MODES] = Field(description="what was compared with the recording")
    chunk_size: int
    every: int | None = Field(description="frames between predictions (null: `chunks` spread over the episodes)")
    chunks: int = Field(description="chunks predicted and compared")
    seed: int = Field(description="episode i's chunks were sampled with seed + i")
    sampling_steps: int = Field(description="denoising steps each chunk was sampled with")
    center_crop: float | None = Field(default=None, description=f"{CROPPED}: openloop.json's")
    # policy, inverse_dynamics: the actions' errors
    steps_compared: int | None = Field(default=None, description="policy, inverse_dynamics: action rows compared")
    columns: list[ColumnError] | None = Field(default=None, description="policy, inverse_dynamics: per action column, "
                                              "in its physical unit")
    mae_normalized: float | None = Field(default=None, description="policy, inverse_dynamics: the columns' "
                                         "mae_normalized averaged over those not left out: one unit-free number to "
                                         "compare checkpoints by (lower is closer to the recording; a training run's "
                                         "val/action_mae); null when every column is left out")
    normalization: str | None = Field(default=None, description="policy, inverse_dynamics: what one unit of "
                                      "mae_normalized is, and the columns left out and why")
    # forward_dynamics: the imagined frames' errors against the recorded ones
    cameras: list[str] | None = Field(default=None, description="forward_dynamics: the dataset's camera keys scored")
    frames_compared: int | None = Field(default=None, description="forward_dynamics: imagined frames compared")
    psnr: PerCamera | None = Field(default=None, description="forward_dynamics: camera → PSNR dB (uint8 frames) of "
                                   "the MSE pooled over every frame compared; null: identical frames (infinite)")
    ssim: PerCamera | None = Field(default=None, description="forward_dynamics: camera → mean SSIM")
    mse: PerCamera | None = Field(default=None, description="forward_dynamics: camera → MSE (0..255 scale)")
    horizon: list[HorizonStep] | list[FrameHorizonStep] = Field(
        description="the error at each step of a chunk (policy, inverse_dynamics: the MAE per action step) or frame "
                    "ahead (forward_dynamics: PSNR, SSIM, MSE); it grows with the step")
    episodes: list[EpisodeError] | list[FrameEpisodeError]
    warnings: list[str] = Field(default_factory=list, description="what about the inputs may make the numbers "
                                "misleading")
    run_dir: str
    files: OpenLoopFiles


class ComparedRun(BaseModel):
    name: str = Field(description="the run's folder name (its whole path where two share one)")
    policy: str
    successes: int
    episodes: int = Field(description="episodes it ran")
    success_rate: float
    ci95: list[float] = Field(description="Wilson 95 % interval of the success rate")
    held_out: str = Field(description="whether its episodes are scenes new to its policy, in words")


class PairedTest(BaseModel):
    a: str
    b: str
    shared_seeds: int = Field(description="the seeds both ran: the scenes the pair is tested on")
    a_only: int = Field(description="shared seeds only a succeeded on")
    b_only: int = Field(description="shared seeds only b succeeded on")
    p_adjusted: float | None = Field(description="exact McNemar p, Holm-Bonferroni adjusted over the comparison's "
                                     "paired tests (with one pair, its p; null: not paired, see warnings)")
    verdict: str = Field(description="'<run> is better' (adjusted p < 0.05), 'no significant difference' or "
                         "'not paired'")


class SettingDifference(BaseModel):
    setting: str
    shown: list[str] = Field(description="each run's value, in the order of runs ('none' or '(not recorded)')")


class RewordedSeed(BaseModel):
    seed: int = Field(description="the scene: the runs ran it with other prompts")
    prompts: list[str | None] = Field(description="each run's prompt there, in the order of runs (null: the run did "
                                      "not run this seed)")
    success: list[bool | None] = Field(description="each run's outcome there, in the order of runs (null: not run)")


class ComparisonFiles(BaseModel):
    report: str = Field(description="index.html: the comparison page")
    comparison: str = Field(description="compare.json: the whole comparison (every run's fields, each pair's "
                            "sentence, steps to success paired, the settings' flags and values, how to read it)")
    outputs: list[str] = Field(description="compare.md, compare.png, compare.json, index.html")


class ComparisonResult(BaseModel):
    task: str
    runs: list[ComparedRun]
    pairs: list[PairedTest] = Field(description="every pair of runs (1 vs 2, 1 vs 3, ..., 2 vs 3, ...): its exact "
                                    "McNemar p, Holm-Bonferroni adjusted over the pairs tested, and the verdict it "
                                    "gives")
    differences: list[SettingDifference] = Field(description="the settings that differ between the runs")
    prompts: list[RewordedSeed] = Field(description="the seeds the runs were told in other words (perturb "
                                        "'prompt=paraphrase', prompt_template), lowest first, at most "
                                        f"{MAX_LISTED_PROMPT_SEEDS} (all are compare.json's): as drawn against "
                                        "reworded, scene by scene")
    reworded_seeds: int = Field(description="how many seeds the runs' prompts differ on (0: told alike throughout)")
    warnings: list[str] = Field(description="training scenes among a run's episodes, a setting that changes what "
                                "success means, an incomplete run, a pair with few or no shared seeds: say so when "
                                "reporting the rates")
    run_dir: str
    files: ComparisonFiles


class DreamFiles(RunFiles):
    dream: str = Field(description="dream.json (schema worldpolicy.dream/v1): per chunk its rows, the policy's seed, "
                       "its reward where scored")


class DreamChunk(BaseModel):
    chunk: int
    actions: list[int] = Field(description="[a, b]: the action rows the policy sent and the world model rolled out")
    frames: list[int] = Field(description="[a+1, b+1]: the video frames imagined from them (frame 0: the start)")
    policy_seed: int | None = Field(description="the policy's seed for this chunk: call_seed(seed, j)")
    world_model_seed: int = Field(description="the world model's seed for this chunk: seed + j")
    reward: float | None = Field(description="score of the chunk's imagined frames (null: no score asked)")


class DreamResult(BaseModel):
    policy: str = Field(description="the policy's checkpoint, as list_checkpoints names it, what the tools' "
                                     "`checkpoint` takes back")
    world_model: str = Field(description="the world model's checkpoint (the policy's: one model in both roles), "
                                         "named alike")
    embodiment: str
    run_dir: str
    files: DreamFiles
    columns: list[str]
    units: list[str]
    fps: float
    chunk_size: int = Field(description="actions per chunk the policy sends")
    execute_steps: int | None = Field(description="actions of each chunk imagined before the policy acts again "
                                      "(null: the whole chunk)")
    seed: int
    score: str | None
    center_crop: dict[str, float | None] = Field(description=f"by role, policy and world_model: {CROPPED}")
    chunks: list[DreamChunk]
    rewards: list[float] | None = Field(description=f"per chunk, with score (reach: {SCORER_REWARDS['reach']}); "
                                        "null without")
    actions: list[list[float]] = Field(description="every action rolled out, [rows, action_dim] in physical units")
    video_frames: int = Field(description="frames of rollout.mp4: the start, then one per action")
    warnings: list[str] = Field(default_factory=list, description="what about the inputs may make the result wrong")


class ShownPlot(BaseModel):
    group: str = Field(description="action, state or other")
    file: str
    shows: str = Field(description="which features, and whether as recorded or as the embodiment's columns")


class ShownEpisode(BaseModel):
    episode: int
    frames: int
    tasks: list[str]
    fields: dict[str, Any] = Field(description="the episodes table's own fields (a success flag, ...)")
    videos: dict[str, str] = Field(description="camera key → its clip (mp4)")
    plots: list[ShownPlot]
    notes: list[str] = Field(description="a feature not plotted, and why")


class ShowFiles(BaseModel):
    report: str = Field(description="index.html: the page")
    summary: str = Field(description="dataset_show.json: the page's source, stats and the episodes table included")
    plots: list[str]
    videos: list[str]


class ShowResult(BaseModel):
    dataset: str
    run_dir: str
    summary: dict[str, Any] = Field(description="the dataset as `worldpolicy dataset info` says it: fps, robot_type, "
                                    "episodes, frames, episode_length, tasks (their count), features, success "
                                    "(succeeded, failed_episodes, where recorded), provenance, ...; task_texts (the "
                                    f"first {MAX_LISTED_TASKS}) and embodiment (stats and the episodes table: files.summary)")
    episodes: list[ShownEpisode]
    warnings: list[str] = Field(default_factory=list, description="what opening the dataset logged")
    files: ShowFiles


class PipelineInfo(BaseModel):
    name: str
    module: str
    modular: bool
    description: str
    action_parameters: list[str]
    action_capable: bool
    drivable: bool
    worldpolicy: str
    importable: bool
    import_error: str | None = None


class WorldModels(BaseModel):
    diffusers_version: str
    pipelines: list[PipelineInfo]


# -- server ---------------------------------------------------------------------------------------------------

Prompt = Annotated[str, Field(description="task description, e.g. 'put the cup in the sink'")]
EmbodimentName = Annotated[
    str | None,
    Field(description="embodiment key from list_embodiments, e.g. 'droid', 'bridge' (default: the checkpoint's own, "
          "shown by list_checkpoints)"),
]
CheckpointName = Annotated[
    str | None, Field(description="checkpoint name from list_checkpoints (optional when only one exists)")
]
READABLE = "under list_checkpoints' input_roots (a relative path from the first)"
ImagePath = Annotated[str | None, Field(description=f"observation image file (single camera), {READABLE}")]
Images = Annotated[
    dict[str, str] | None, Field(description="camera key → image file, for multi-camera embodiments (see "
                                 "camera_keys): each camera of a composite, or the one camera an embodiment without "
                                 f"a composite sees; files {READABLE}")
]
State = Annotated[list[float] | None, Field(
    description="current state for state-conditioned embodiments (columns); others ignore it, with a warning")]


def _ranged(bounds: Range, description: str) -> Any:
    """An argument's Field whose input schema says `bounds` (minimum/maximum, or minItems/maxItems: `Range.schema`),
    the range the toolbox checks it against, so a client knows it before calling. Strict: pydantic's lax mode read
    `true` as 1 (`episodes: true` ran one episode) before the toolbox, which refuses a boolean, saw it."""
    return Field(description=description, json_schema_extra=bounds.schema(), strict=True)


Seed = Annotated[int | None, _ranged(SEED, f"sampling seed for reproducible results, {SEED.accepted} (default: a "
                                     "fresh one, which the result's seed gives back)")]
Steps = Annotated[int | None, _ranged(STEPS, f"denoising steps, {STEPS.accepted} (default: the embodiment's preset)")]
Guidance = Annotated[float | None, _ranged(GUIDANCE, f"classifier-free guidance scale, {GUIDANCE.accepted} (default: "
                                           "the embodiment's preset)")]
Animate = Annotated[bool, Field(description="also write an mp4 with a playhead on the action plot beside the video")]
ShowPlots = Annotated[bool, Field(description="also return the plot images in the result, to look at them")]
CenterCrop = Annotated[bool, Field(strict=True, description="false: leave the frames whole where the checkpoint was "
                                   "trained with [augment] and its record says to crop their centre (the command "
                                   "line's --no-center-crop; docs/training.md, Image augmentation); default true: "
                                   "crop them as the record says (the result's center_crop says which)")]


def _json_text(doc: dict[str, Any]) -> TextContent:
    """A result's text block, what most clients put in the model's context: `doc` as one line of JSON, not indented
    (half as long again)."""
    return TextContent(type="text", text=json.dumps(doc))


def _with_plots(result: Any, show: bool) -> Any:
    """Attach the result's plot PNGs (`toolbox.plot_images`) as image content, so an agent that can see looks at them
    directly. An error result passes through as it is."""
    if not show or not isinstance(result, dict):
        return result
    images = [ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type="image/png")
              for data in plot_images(result)]
    return CallToolResult(
        content=[_json_text(result), *images], structured_content=result
    )


def _error(exc: BaseException) -> CallToolResult:
    payload = {"error": error_payload(exc)}
    return CallToolResult(
        content=[_json_text(payload)], structured_content=payload, is_error=True
    )


class CallCancelled(Exception):
    """Raised in the worker thread of a call its client cancelled, at its next progress report."""


async def _call(timeout_s: float | None, ctx: Context | None, fn: Callable[..., dict[str, Any]], *args: Any,
                **kwargs: Any) -> Any:
    """Run a blocking toolbox operation in a worker thread; progress goes back to the client; errors become results.

    A call the client cancels returns at once, and its worker stops at its next progress report (a denoising step,
    a simulated episode; a checkpoint load runs to its end): else it ran to the end holding the model, and every
    later model call waited for a result nobody would read. A call still running after `timeout_s` (None: no limit)
    is stopped the same way and answered with a `timeout` error saying where it was: a client that waits for it
    otherwise waited without bound (a sim run takes minutes), or gave up with no word of why."""
    cancelled = threading.Event()
    reached = ["its start"]  # the last progress message: where a call that ran out of time was

    def progress(done: float, total: float | None, message: str) -> None:
        if cancelled.is_set():
            raise CallCancelled(f"cancelled by the client at: {message}")
        reached[0] = message
        try:
            anyio.from_thread.run(ctx.report_progress, float(done), None if total is None else float(total), message)
        except Exception:  # a client gone mid-call must not fail the computation
            logger.debug("progress notification failed", exc_info=True)

    if ctx is not None:
        kwargs["progress"] = progress
    name = getattr(fn, "__name__", fn)
    with anyio.move_on_after(timeout_s):  # its own cancellation ends the block; the client's goes on up
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        except Exception as exc:  # noqa: BLE001 - any failure becomes a tool error; the server keeps serving
            logger.info("tool %s failed: %s", name, exc)
            return _error(exc)
    logger.info("tool %s ran past %g s at: %s", name, timeout_s, reached[0])
    # a call that reports progress is stopped at its next report (`CallTimeout`'s default says so); one that does not
    unread = {} if ctx is not None else {"stopped": "was answered (its work, which reports no progress, runs on to its "
                                                    "end unread)"}
    return _error(CallTimeout(timeout_s, "`worldpolicy mcp --call-timeout`", reached[0], **unread))


class _Server(MCPServer):
    """`MCPServer`, refusing an argument a tool does not take: the SDK drops it silently, so a misspelt or misplaced
    one ran the call without it (`evaluate_in_sim(checkpoint=...)` evaluated the scripted expert; `list_embodiments
    (chekpoint=...)` listed them all) and the agent took the result for the one it asked for."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        schema = next((tool.input_schema for tool in await self.list_tools() if tool.name == name), None)
        taken = (schema or {}).get("properties", {})
        unknown = sorted(set(arguments or {}) - set(taken)) if schema is not None else []
        if unknown:  # an unknown tool is the SDK's own error
            return _error(ToolInputError(unknown[0], f"tool {name} takes no such argument", arguments[unknown[0]],
                                         sorted(taken)))
        try:
            result = await super().call_tool(name, arguments, context)
        except ToolError as exc:  # arguments the input schema refuses: pydantic's text, with no structured error
            if not isinstance(exc.__cause__, ValidationError):
                raise
            return _error(_schema_violation(exc.__cause__, taken, arguments))
        return _compact(result)


def _schema_violation(exc: ValidationError, properties: dict[str, Any], arguments: dict[str, Any]) -> ToolInputError:
    """The first argument the input schema refused (`task: "grasp"`, `prompt: 42`) as the `invalid_input` every other
    bad argument is: the SDK answered pydantic's multi-line text with a link, and no structured content, so an agent
    reading `error.parameter` found none. `accepted`: the schema's values or type (a list's with its items') for it,
    and its range."""
    problem = exc.errors()[0]
    parameter = str(problem["loc"][0]) if problem.get("loc") else "arguments"
    schema = properties.get(parameter, {})
    options = [schema, *schema.get("anyOf", [])]
    enum = next((o["enum"] for o in options if "enum" in o), None)
    const = [o["const"] for o in options if "const" in o]
    # a list's items too (`episodes: [1.5]` was told "array", the one thing it was)
    types = [o["type"] + (f" of {o['items']['type']}" if "type" in o.get("items", {}) else "") for o in options
             if "type" in o and o["type"] != "null"]
    bounds = ", ".join(f"{word} {schema[key]}" for key, word in (("minimum", "minimum"), ("maximum", "maximum"),
                                                                  ("minItems", "at least"), ("maxItems", "at most"))
                       if key in schema)  # `Range.schema`'s
    accepted = enum or const or (" or ".join(types) + (f" ({bounds})" if bounds else "") if types else None)
    return ToolInputError(parameter, problem["msg"], arguments.get(parameter), accepted)


def _compact(result: Any) -> Any:
    """The result's text block as `_json_text` writes it, as `_with_plots` and `_error` do: the SDK writes a returned
    dict's indented (`indent=2`; list_embodiments: 15.7 kB against 10.2 kB)."""
    if not isinstance(result, CallToolResult) or result.structured_content is None or not result.content:
        return result
    if getattr(result.content[0], "type", None) != "text":
        return result
    return result.model_copy(update={"content": [_json_text(result.structured_content), *result.content[1:]]})


def build_server(toolbox: Toolbox | None = None, name: str = "worldpolicy",
                 call_timeout_s: float | None = None) -> MCPServer:
    """An `MCPServer` exposing `toolbox` (a fresh default-configured one if not given), each call stopped after
    `call_timeout_s` seconds (None: never; `worldpolicy mcp` gives --call-timeout), which its instructions tell the
    agent."""
    from .. import __version__

    check_call_timeout(call_timeout_s)
    tb = toolbox or Toolbox()
    limit = ("" if call_timeout_s is None else f" A call still running after {call_timeout_s:g} s is stopped, with "
             "an error of type 'timeout' saying where it was.")
    srv = _Server(name, instructions=INSTRUCTIONS + limit, version=__version__)

    async def call(ctx: Context | None, fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        return await _call(call_timeout_s, ctx, fn, *args, **kwargs)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

    @srv.tool(annotations=read_only)
    async def list_embodiments(
        checkpoint: Annotated[str | None, Field(description="a checkpoint name from list_checkpoints: list only the "
                                                "embodiment it runs with when `embodiment` is left out (a robot of "
                                                "its own included)")] = None,
    ) -> EmbodimentList:
        """List the robot embodiments: action columns with units, chunk size, rate, camera and state keys."""
        return await call(None, tb.list_embodiments, checkpoint)

    @srv.tool(annotations=read_only)
    async def list_checkpoints() -> CheckpointList:
        """List the Cosmos3 checkpoints this server can load, which are loaded now, and the folders (input_roots) the
        tools read files from."""
        return await call(None, tb.list_checkpoints)

    @srv.tool(annotations=read_only)
    async def list_world_models() -> WorldModels:
        """List the world-foundation / action-capable pipelines in the installed diffusers and which worldpolicy drives."""
        return await call(None, tb.list_world_models)

    @srv.tool(annotations=writes)
    async def predict_actions(
        prompt: Prompt,
        ctx: Context,
        embodiment: EmbodimentName = None,
        checkpoint: CheckpointName = None,
        image: ImagePath = None,
        images: Images = None,
        state: State = None,
        seed: Seed = None,
        steps: Steps = None,
        guidance: Guidance = None,
        decode_video: Annotated[bool, Field(description="also decode the imagined future video")] = False,
        animate: Animate = False,
        show_plots: ShowPlots = False,
        center_crop: CenterCrop = True,
    ) -> PredictionResult:
        """What should the robot do here? Predict an action chunk from an observation and a task."""
        result = await call(
            ctx,
            tb.predict,
            prompt,
            embodiment,
            checkpoint,
            image,
            images,
            state,
            seed,
            steps,
            guidance,
            decode_video,
            animate,
            center_crop=center_crop,
        )
        return _with_plots(result, show_plots)

    @srv.tool(annotations=writes)
    async def imagine_rollout(
        prompt: Prompt,
        ctx: Context,
        embodiment: EmbodimentName = None,
        checkpoint: CheckpointName = None,
        image: ImagePath = None,
        images: Images = None,
        actions: Annotated[
            list[list[float]] | None, Field(description="[T, action_dim] actions in physical units, the embodiment's "
                                            "columns in order (or actions_file); T other than chunk_size is cut or "
                                            "its last row repeated, with a warning (whole_trajectory: every row "
                                            "rolled out)")
        ] = None,
        actions_file: Annotated[str | None, Field(description="actions file: actions.json from an earlier call, or a "
                                                  ".csv (header of column names, optionally 'tx [m]'), .npz (named "
                                                  "arrays) or .npy (rows in physical units); columns matched by name; "
                                                  f"{READABLE}")
                                ] = None,
        state: State = None,
        seed: Seed = None,
        steps: Steps = None,
        guidance: Guidance = None,
        animate: Animate = False,
        show_plots: ShowPlots = False,
        whole_trajectory: Annotated[bool, Field(
            description="roll out every action row, not only the first chunk_size: chunks of chunk_size rows, each "
            "from the last frame the one before imagined (one after another, so it takes chunks times as long; "
            "errors compound over the chunks), joined into one video of rows+1 frames; a state-conditioned "
            "embodiment needs absolute joint actions (droid/joint_pos)")] = False,
        center_crop: CenterCrop = True,
    ) -> PredictionResult:
        """What happens if the robot does this? Imagine the video of executing actions from an observation (with
        whole_trajectory, a trajectory of any length, chunk after chunk)."""
        result = await call(
            ctx,
            tb.imagine,
            prompt,
            embodiment,
            checkpoint,
            image,
            images,
            actions,
            actions_file,
            state,
            seed,
            steps,
            guidance,
            animate,
            whole_trajectory=whole_trajectory,
            center_crop=center_crop,
        )
        return _with_plots(result, show_plots)

    @srv.tool(annotations=writes)
    async def infer_actions(
        prompt: Prompt,
        video: Annotated[str, Field(description="the clip whose actions to recover: a video file (mp4, mov, mkv, "
                                    "avi, webm), an animated GIF/WebP/TIFF or a folder of frames (name order); "
                                    f"{READABLE}")],
        ctx: Context,
        embodiment: EmbodimentName = None,
        checkpoint: CheckpointName = None,
        state: Annotated[list[float] | list[list[float]] | None, Field(
            description="current state for state-conditioned embodiments (columns), at the clip's first frame used; "
            "from a later start_frame or with whole_clip: one row per clip frame; others ignore it, with a warning")
        ] = None,
        seed: Seed = None,
        steps: Steps = None,
        guidance: Guidance = None,
        animate: Animate = False,
        show_plots: ShowPlots = False,
        start_frame: Annotated[int, _ranged(START_FRAME, "explain the clip from this frame (from 0)")] = 0,
        whole_clip: Annotated[bool, Field(
            description="label every frame transition of the clip (from start_frame), in windows of chunk_size+1 "
            "frames: one action row per transition; otherwise only the first chunk_size+1 frames")] = False,
        resample: Annotated[bool, Field(
            description="read a clip recorded at another rate than the embodiment's fps at that rate (the frames "
            "nearest its timestamps; needs a video file or an animated GIF with frame durations)")] = False,
        center_crop: CenterCrop = True,
    ) -> PredictionResult:
        """Which actions produced this video? Inverse dynamics from a clip (video file, animated GIF or folder of
        frames): its first chunk_size+1 frames, or with whole_clip every frame (pseudo-labelling a video)."""
        result = await call(
            ctx, tb.infer_actions, prompt, video, embodiment, checkpoint, state, seed, steps, guidance, animate,
            start_frame=start_frame, whole_clip=whole_clip, resample=resample, center_crop=center_crop,
        )
        return _with_plots(result, show_plots)

    @srv.tool(annotations=writes)
    async def visualize_actions(
        path: Annotated[str, Field(description=f"actions.json or a run directory, {READABLE}")],
        video: Annotated[
            str | None, Field(description="video to animate beside the plot (default: rollout.mp4)")
        ] = None,
        animate: Annotated[bool, Field(description="write the playhead animation mp4")] = True,
        show_plots: ShowPlots = False,
    ) -> VisualizationResult:
        """Plot an action chunk: per-dimension time series with units, 3-D end-effector path or joint plots."""
        return _with_plots(await call(None, tb.visualize, path, video, animate), show_plots)

    @srv.tool(annotations=writes)
    async def evaluate_in_sim(
        ctx: Context,
        task: Annotated[Literal["reach", "push", "pick_place"], Field(description="tabletop task")] = "reach",
        policy: Annotated[str, Field(description="checkpoint name, 'scripted' or 'random'")] = "scripted",
        embodiment: Annotated[str | None, Field(description="action space for checkpoint/random policies")] = None,
        episodes: Annotated[int, _ranged(SIM_EPISODES, f"number of seeded episodes, {SIM_EPISODES.accepted}")] = 2,
        seed: Annotated[int, _ranged(SEED, f"episode i uses seed + i (default {EVAL_SEED}, as `worldpolicy sim`: "
                                     "past the scenes `dataset from-sim` records from 0, which a checkpoint may have "
                                     "been trained on)")] = EVAL_SEED,
        max_steps: Annotated[int | None, _ranged(SIM_STEPS, f"cap on control steps per episode, {SIM_STEPS.accepted} "
                                                 "(default: the task's own limit)")] = None,
        perturb: Annotated[str | None, Field(description="shifts on top of every scene, for a robustness run "
                                             "compared with a clean one of the same seed (compare_sim_runs), as "
                                             "`worldpolicy sim --perturb` takes them, comma-separated: "
                                             f"{perturbation_help()}")] = None,
        prompt_template: Annotated[str | None, Field(description="every episode's prompt in your words, as "
                                                     "`worldpolicy sim --prompt-template`: the task's placeholders "
                                                     "{color} and {object} (push, pick_place: also {goal_color}, "
                                                     "{goal}) filled per episode, e.g. 'move to the {color} {object}'; "
                                                     "not with perturb's prompt (default: the task's wording)")] = None,
        strategy: Annotated[Literal["execute", "ensemble", "async"], Field(
            description="how the policy's chunks run, as `worldpolicy sim --strategy`: execute (k actions, then ask "
            "again), ensemble (a chunk every step, those covering a step blended), async (the next chunk computed "
            "while this one runs)")] = "execute",
        latency: Annotated[float, Field(
            strict=True, description="simulated inference time of each request, in ms, as `worldpolicy sim "
            "--latency`: the sim steps on until its reply lands (rounded to whole control steps); compare with a run "
            "of latency 0 on the same seed (compare_sim_runs)")] = 0.0,
        rtc: Annotated[bool, Field(
            description="real-time chunking, as `worldpolicy sim --rtc`: with strategy async and a checkpoint, each "
            "next chunk begins with the running chunk's actions that run while it is computed")] = False,
        num_envs: Annotated[int, Field(
            strict=True, description="episodes stepped together, their model requests batched into one forward per "
            "step, as `worldpolicy sim --num-envs`: a checkpoint, any strategy (default 1)")] = 1,
        plan: Annotated[int | None, _ranged(
            Range(*PLAN_CANDIDATES), f"best-of-N planning with a checkpoint, as `worldpolicy sim --plan`: each chunk "
            f"chosen among N sampled ones ({PLAN_CANDIDATES[0]}-{PLAN_CANDIDATES[1]}) by the score of the future the "
            "model imagines for it, at N samples and N imagined videos per chunk; compare with a run without it on the "
            "same seed (compare_sim_runs); num_envs 1, no rtc (default: none, the plain policy)")] = None,
        plan_scorer: Annotated[Literal[SCORERS] | None, Field(
            description=f"with plan: what ranks the imagined futures: reach ({SCORER_REWARDS['reach']}; the "
            "checkpoint's cameras stacked top to bottom) (default: reach)")] = None,
        center_crop: CenterCrop = True,
    ) -> SimResult:
        """Run a short MuJoCo evaluation (Franka Panda tabletop) and report the success rate. `training_scenes` and
        `warnings` say whether episodes were scenes the checkpoint was trained on (then not a held-out success rate).
        A cancelled or failed call leaves no run folder (finished episodes are not kept: rerun it)."""
        return await call(ctx, tb.evaluate_sim, task, policy, embodiment, episodes, seed, max_steps, perturb,
                          strategy=strategy, latency=latency, rtc=rtc, num_envs=num_envs, plan=plan,
                          plan_scorer=plan_scorer, center_crop=center_crop, prompt_template=prompt_template)

    @srv.tool(annotations=writes)
    async def evaluate_open_loop(
        dataset: Annotated[str, Field(description="a LeRobot dataset folder (holds meta/info.json) recorded at the "
                                      f"embodiment's fps, {READABLE}; it is only read")],
        ctx: Context,
        checkpoint: CheckpointName = None,
        embodiment: EmbodimentName = None,
        episodes: Annotated[list[int] | None, Field(description="episode indexes to evaluate on (from 0; negative "
                                                    "from the end; default: all)")] = None,
        every: Annotated[int | None, _ranged(OPEN_LOOP_EVERY, "predict a chunk every N frames (default: the chunk "
                                             "size, so the chunks tile each episode)")] = None,
        chunks: Annotated[int | None, _ranged(OPEN_LOOP_CHUNKS, "instead of every: N chunks, their start frames "
                                              f"spread evenly over the episodes ({OPEN_LOOP_CHUNKS.accepted})")] = None,
        seed: Annotated[int, _ranged(SEED, "episode i's chunks are sampled with seed + i")] = 0,
        steps: Steps = None,
        action_keys: Annotated[list[str] | None, Field(description="the dataset features that hold the recorded "
                                                       "actions (default: those the checkpoint's training run "
                                                       "read, where the dataset has them all; else the ones "
                                                       "`dataset from-sim` writes, or `action` where it is the "
                                                       "dataset's one action feature)")] = None,
        state_keys: Annotated[list[str] | None, Field(description="state features for a state-conditioned "
                                                      "embodiment (default: those the checkpoint's training run "
                                                      "read, where the dataset has them all; else "
                                                      "observation.state, else the observation.state.* "
                                                      "features)")] = None,
        show_plots: ShowPlots = False,
        center_crop: CenterCrop = True,
        mode: Annotated[Literal[MODES], Field(description="what is compared with the recording (`dataset eval "
                                                   "--mode`): policy, the predicted chunks against the recorded "
                                                   "actions; inverse_dynamics, the actions recovered from the "
                                                   "recorded frames against them (the same fields); "
                                                   "forward_dynamics, the frames imagined under the recorded "
                                                   "actions against the recorded frames (PSNR, SSIM, MSE per camera "
                                                   "and frame ahead, a video per episode)")] = "policy",
    ) -> OpenLoopResult:
        """How close are the checkpoint's predicted chunks to the actions a dataset recorded? Open-loop evaluation
        (`worldpolicy dataset eval`): a chunk predicted from each chosen frame's cameras, task and state, compared
        with the actions recorded over the same steps; `mode` scores the world model's other modes on the same
        chunks. Not success (the closed loop drifts): evaluate_in_sim is that. A cancelled or failed call leaves no
        run folder."""
        result = await call(ctx, tb.evaluate_open_loop, dataset, checkpoint, embodiment, episodes, every, chunks,
                             seed, steps, action_keys, state_keys, center_crop=center_crop, mode=mode)
        return _with_plots(result, show_plots)

    @srv.tool(annotations=writes)
    async def compare_sim_runs(
        runs: Annotated[list[str], _ranged(COMPARED_RUNS, f"{COMPARED_RUNS.accepted} of one task (evaluate_in_sim's "
                                           f"run_dir, or `worldpolicy sim --out` folders), {READABLE}")],
    ) -> ComparisonResult:
        """Which sim run is better? Runs side by side: success rates with Wilson 95 % intervals, every pair tested on
        the seeds both ran (exact McNemar: tells runs apart long before their intervals stop overlapping; with several
        pairs, Holm-Bonferroni adjusted), and the settings that differ: a summary; the whole comparison (each pair's
        sentence, steps to success, how to read it) is files.comparison and the page files.report."""
        return await call(None, tb.compare_sim_runs, runs)

    @srv.tool(annotations=writes)
    async def dream(
        prompt: Prompt,
        chunks: Annotated[int, _ranged(DREAM_CHUNKS, f"action chunks to dream, {DREAM_CHUNKS.accepted}; each is a "
                                       "policy call then a world-model call, one after another")],
        ctx: Context,
        checkpoint: Annotated[str | None, Field(description="the policy's checkpoint name from list_checkpoints "
                                                "(optional when only one exists)")] = None,
        world_model: Annotated[str | None, Field(description="the world model's checkpoint name (default: the "
                                                 "policy's, one loaded model in both roles)")] = None,
        embodiment: EmbodimentName = None,
        image: ImagePath = None,
        images: Images = None,
        state: State = None,
        seed: Annotated[int, _ranged(SEED, "the world model's chunk j samples with seed + j, the policy's with "
                                     "call_seed(seed, j): a dream repeats, a longer one goes on from a shorter "
                                     "one")] = 0,
        execute_steps: Annotated[int | None, Field(strict=True, description="the first K actions of each chunk are "
                                                   "imagined before the policy acts again, 1..chunk size (default: "
                                                   "all)")] = None,
        score: Annotated[Literal[SCORERS] | None, Field(description="score each chunk's imagined frames: reach "
                                                        f"({SCORER_REWARDS['reach']}; the prompt names the ball's "
                                                        "colour; the world model's cameras one alone or stacked top "
                                                        "to bottom); default: no reward")] = None,
        show_plots: ShowPlots = False,
        center_crop: CenterCrop = True,
    ) -> DreamResult:
        """How would this policy do, imagined? Run it closed loop in a world model's imagination (`worldpolicy
        dream`): from the observation the policy acts, the world model imagines the frames its actions lead to, the
        policy acts on the last of them, chunks times. No simulator; errors compound over the chunks. A cancelled or
        failed call leaves no run folder."""
        result = await call(ctx, tb.dream, prompt, chunks, checkpoint, world_model, embodiment, image, images, state,
                             seed, execute_steps, score, center_crop=center_crop)
        return _with_plots(result, show_plots)

    @srv.tool(annotations=writes)
    async def show_dataset(
        dataset: Annotated[str, Field(description=f"a LeRobot dataset folder (holds meta/info.json), {READABLE}; it is "
                                      "only read")],
        ctx: Context,
        episodes: Annotated[list[int] | None, _ranged(SHOWN_EPISODES, "episode indexes to show, "
                                                      f"{SHOWN_EPISODES.accepted} (default: the first 5)")] = None,
        embodiment: Annotated[str | None, Field(description="read the actions (and a state-conditioned one's state) "
                                                "as this embodiment's columns and units, as training maps them "
                                                "(default: as recorded)")] = None,
        show_plots: ShowPlots = False,
    ) -> ShowResult:
        """What is in this dataset? A page of it (`worldpolicy dataset show`): its summary (rate, episodes and
        lengths, features, tasks, stats, provenance) and per episode each camera's clip, its numeric features plotted
        over time with their named columns, its task and fields."""
        result = await call(ctx, tb.show_dataset, dataset, episodes, embodiment)
        return _with_plots(result, show_plots)

    return srv


def run_server(config: ToolboxConfig, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8020,
               call_timeout_s: float | None = None) -> None:
    """Serve until interrupted. HTTP request bodies are capped at MAX_REQUEST_BODY_BYTES; each call at
    `call_timeout_s` (`build_server`)."""
    srv = build_server(Toolbox(config), call_timeout_s=call_timeout_s)
    if transport == "stdio":
        srv.run("stdio")
    elif transport == "http":
        srv.run("streamable-http", host=host, port=port, max_request_body_size=MAX_REQUEST_BODY_BYTES)
    else:
        raise ValueError(f"transport={transport!r}; accepted: stdio, http")
