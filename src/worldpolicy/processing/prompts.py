"""Captions the model was trained on (cosmos3-model.md §8) and their tokenisation.

Two formats: the JSON action caption diffusers emits for every action run, and the plain sentence format the released
Cosmos3-Nano-Policy-DROID (RoboLab) was trained with — which diffusers cannot emit.
"""

from __future__ import annotations

import json
from typing import Any

from ..embodiments import view_point_sentences

SYSTEM_PROMPT_VIDEO = "You are a helpful assistant who will generate videos from a give prompt."
ASPECT_RATIOS = ("1,1", "4,3", "3,4", "16,9", "9,16")


# A task is a sentence or two. The text tower's cost grows faster than the length (10k characters took 1 s on CPU, 50k
# 21 s), and a server runs one batch at a time: one huge prompt would hold up every client.
MAX_PROMPT_CHARS = 2000


def check_task(task: Any, param: str = "prompt") -> str:
    if not isinstance(task, str):
        raise TypeError(f"{param} must be a string task description, got {type(task).__name__}")
    if not task.strip():
        raise ValueError(f"{param} is empty; describe the task, e.g. 'Pick up the banana and place it in the bowl.'")
    check_length(task, param)
    return task


def check_length(text: str, param: str) -> None:
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"{param} is {len(text)} characters long; at most {MAX_PROMPT_CHARS} are accepted")


def view_sentence(view_point: str) -> str:
    sentences = view_point_sentences()
    if view_point not in sentences:
        raise ValueError(f"view_point={view_point!r} is not known; accepted: {', '.join(sentences)}")
    return sentences[view_point]


def _sentence(task: str) -> str:
    desc = task.strip()
    return desc if not desc or desc.endswith((".", "!", "?")) else f"{desc}."


def json_caption(task: str, view_point: str, num_frames: int, fps: float, height: int, width: int) -> str:
    """The structured caption `Cosmos3OmniPipeline` builds for action runs (byte-identical; tested)."""
    duration_s = num_frames / fps
    minutes, seconds = divmod(round(duration_s), 60)
    caption: dict[str, Any] = {"cinematography": {"framing": view_sentence(view_point)}}
    ratio = width / height
    aspect = min(ASPECT_RATIOS, key=lambda r: abs(int(r.split(",")[0]) / int(r.split(",")[1]) - ratio))
    caption["actions"] = [{"time": f"0:00-{minutes}:{seconds:02d}", "description": _sentence(task)}]
    caption["duration"] = f"{int(duration_s)}s"
    caption["fps"] = float(fps)
    caption["resolution"] = {"H": int(height), "W": int(width)}
    caption["aspect_ratio"] = aspect
    return json.dumps(caption)


def plain_caption(
    task: str, view_point: str, num_frames: int, fps: float, height: int, width: int, view_description: str = ""
) -> str:
    """The RoboLab plain format: task, view sentence, view description, duration/fps, canvas resolution."""
    parts = [_sentence(task), view_sentence(view_point)]
    if view_description:
        parts.append(view_description.strip())
    parts.append(f"The video is {float(int(num_frames / fps)):.1f} seconds long and is of {fps:.0f} FPS.")
    parts.append(f"This video is of {height}x{width} resolution.")
    return " ".join(parts)


def build_caption(
    fmt: str, task: str, view_point: str, num_frames: int, fps: float, height: int, width: int, view_description: str = ""
) -> str:
    if fmt == "json":
        return json_caption(task, view_point, num_frames, fps, height, width)
    if fmt == "plain":
        return plain_caption(task, view_point, num_frames, fps, height, width, view_description)
    raise ValueError(f"prompt_format={fmt!r}; accepted: json, plain")


def tokenize(tokenizer: Any, text: str, use_system_prompt: bool) -> list[int]:
    """Chat-template tokens + [eos, <|vision_start|>], exactly as the pipeline appends them."""
    messages = []
    if use_system_prompt:
        messages.append({"role": "system", "content": SYSTEM_PROMPT_VIDEO})
    messages.append({"role": "user", "content": text})
    encoded = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, add_vision_id=False, return_dict=True
    )
    vision_start = tokenizer.convert_tokens_to_ids("<|vision_start|>")
    if vision_start is None or vision_start == tokenizer.unk_token_id:
        raise ValueError("the checkpoint's tokenizer has no '<|vision_start|>' token; it is not a Cosmos3 tokenizer")
    return list(encoded["input_ids"]) + [tokenizer.eos_token_id, vision_start]
