"""The index.html of a dataset shown (`worldpolicy dataset show`, `data.show`): drawn from the folder's
dataset_show.json and the clips and plots of its `episode_NNNNNN/` folders alone, in the run pages' style
(`report.page_html`), so `worldpolicy report DIR` redraws it. What is shown is `data.show`'s; this only lays it out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fileio import SHOW_FILE, SHOW_SCHEMA, schema_matches
from ..hub import shown_name
from .plots import plural
from .report import (
    _cards,
    _data_uri,
    _esc,
    _files_section,
    _flatten,
    _fmt,
    _kv_table,
    _notes_section,
    _read_json,
    _records_table,
    _unreadable_png,
    image_figure,
    page_html,
    video_figure,
)

__all__ = ["build_dataset_html"]


def _range(chosen: list[int]) -> str:
    """Episode indexes as a reader says them: `0-4`, `0, 3, 7`."""
    if len(chosen) > 2 and chosen == list(range(chosen[0], chosen[-1] + 1)):
        return f"{chosen[0]}-{chosen[-1]}"
    return ", ".join(map(str, chosen))


def _summary(doc: Mapping[str, Any]) -> str:
    lengths = doc.get("episode_length") or {}
    cameras = [k for k, f in doc.get("features", {}).items() if f.get("dtype") in ("video", "image")]
    cards = [("robot", doc.get("robot_type") or "not recorded"), ("rate", f"{_fmt(doc.get('fps'))} fps"),
             ("episodes", doc.get("episodes")), ("frames", doc.get("frames")),
             ("episode frames", f"{lengths['min']} / {lengths['mean']:.1f} / {lengths['max']} (min / mean / max)"
              if lengths else "no episodes"),
             ("tasks", doc.get("tasks")), ("cameras", len(cameras)),
             ("format", f"LeRobot {doc.get('codebase_version')}"),
             ("columns read as", f"embodiment {doc['embodiment']}" if doc.get("embodiment") else "recorded")]
    if success := doc.get("success"):  # where the episodes table says (`dataset from-sim`)
        cards.insert(4, ("succeeded", f"{success['succeeded']} of {doc.get('episodes')}"))
    chosen = doc.get("chosen", [])
    which = (f"the first {len(chosen)} (by default; --episodes chooses others)" if doc.get("chosen_by_default")
             else _range(chosen))
    done = len(doc.get("shown", []))
    line = f"Episodes shown below: {_esc(which)}."
    if not doc.get("complete", True):  # how it stopped, as the show kept it (`data.show`); a kill or a show still
        # going keeps nothing
        how = doc.get("stopped") or "stopped, or still being written"
        line += f" <span class=warn>Incomplete: {done} of {len(chosen)} written ({_esc(how)}).</span>"
    return (f"<section id=summary><h2>Summary</h2>{_cards(cards)}<p class=muted>{_esc(doc.get('root'))}</p>"
            f"<p>{line}</p></section>")


def _names(names: Any) -> str:
    """A feature's `names` as info.json gives them: a list, or LeRobot's nested form (`{"motors": [...]}`)."""
    if isinstance(names, Mapping):
        return "; ".join(f"{k}: {_names(v)}" for k, v in names.items())
    return ", ".join(map(str, names)) if isinstance(names, list) else str(names)


def _features(doc: Mapping[str, Any]) -> str:
    codecs = doc.get("video_codecs") or {}
    rows = [{"feature": k, "dtype": f.get("dtype"), "shape": "×".join(map(str, f.get("shape", []))),
             "names": _names(f["names"]) if "names" in f else "", **({"codec": codecs[k]} if k in codecs else {})}
            for k, f in doc.get("features", {}).items()]
    not_read = "".join(f"<p class=muted>not read: {_esc(k)}: {_esc(why)}</p>"
                       for k, why in (doc.get("not_read") or {}).items())
    return f"<section id=features><h2>Features</h2>{_records_table(rows)}{not_read}</section>"


def _in_folder(folder: Path, rel: Any) -> tuple[Path, str]:
    """(`rel` of dataset_show.json inside `folder`, what is wrong with it or ""): a name that leads out of the folder
    (`..`, an absolute path, a link) is refused, as the page embeds the file's bytes and `worldpolicy report` redraws
    it from a folder it did not write."""
    path = folder / str(rel)
    if not path.resolve().is_relative_to(folder.resolve()):
        return path, "is outside the folder"
    return path, "" if path.is_file() else "is missing"


def _episode_section(folder: Path, episode: Mapping[str, Any], first_video: int, embedded: int,
                     notes: list[str]) -> tuple[str, int, int, int]:
    """(the section of one episode shown, its videos, its plots, the video bytes the page embeds after it)."""
    i = episode.get("episode")
    tasks = episode.get("tasks", [])
    parts = [f"<p>task{'s' if len(tasks) > 1 else ''}: " + " · ".join(f"“{_esc(t)}”" for t in tasks) + "</p>"]
    if episode.get("fields"):
        parts.append(_kv_table(_flatten(episode["fields"])))
    videos = []
    for key, rel in episode.get("videos", {}).items():
        path, problem = _in_folder(folder, rel)
        if problem:
            notes.append(f"episode {i}: {rel} {problem}")
            continue
        figure, embedded = video_figure(folder, path, first_video + len(videos), key,
                                        f"the recorded camera's frames of episode {i}", embedded)
        videos.append(figure)
    plots = []
    for plot in episode.get("plots", []):
        path, problem = _in_folder(folder, plot.get("file"))
        problem = problem or _unreadable_png(path)
        if problem:
            notes.append(f"episode {i}: {plot.get('file')} is not shown: {problem}")
            continue
        plots.append(image_figure(_data_uri(path, "image/png"), str(plot.get("shows")), str(plot.get("file"))))
    parts += videos + [f"<div>{''.join(plots)}</div>"]
    parts += [f"<p class=warn>{_esc(n)}</p>" for n in episode.get("notes", [])]
    title = f"Episode {i} · {plural(int(episode.get('frames', 0)), 'frame')}"
    return f"<section id=episode-{_esc(i)}><h2>{_esc(title)}</h2>{''.join(parts)}</section>", len(videos), \
        len(plots), embedded


def build_dataset_html(folder: str | Path, title: str | None = None) -> str:
    """The page of the dataset shown in `folder`: summary, tasks, features, stats, provenance, the episodes table,
    then each episode shown (clips, plots, task, fields)."""
    folder = Path(folder)
    doc = _read_json(folder / SHOW_FILE)
    if not schema_matches(doc, SHOW_SCHEMA, repr(str(folder / SHOW_FILE))):
        raise ValueError(f"{str(folder / SHOW_FILE)!r}: not a dataset shown (schema "
                         f"{doc.get('schema') if isinstance(doc, Mapping) else type(doc).__name__!r})")
    sections = [_summary(doc)]
    tasks = doc.get("task_texts", [])
    sections.append("<section id=tasks><h2>Tasks</h2><ol start=0>"
                    + "".join(f"<li>{_esc(t)}</li>" for t in tasks) + "</ol></section>")
    sections.append(_features(doc))
    if doc.get("stats"):
        sections.append(f"<section id=stats><h2>Stats (meta/stats.json)</h2>{_records_table(doc['stats'])}"
                        "</section>")
    else:
        sections.append("<section id=stats><h2>Stats</h2><p class=muted>the dataset has no meta/stats.json</p>"
                        "</section>")
    if doc.get("provenance"):
        sections.append(f"<section id=provenance><h2>Provenance (how worldpolicy made it)</h2>"
                        f"{_kv_table(_flatten(doc['provenance']))}</section>")
    if doc.get("episode_table"):
        sections.append(f"<section id=episodes><h2>Episodes</h2>{_records_table(doc['episode_table'])}</section>")
    notes: list[str] = []
    videos = plots = embedded = 0
    for episode in doc.get("shown", []):
        section, v, p, embedded = _episode_section(folder, episode, videos, embedded, notes)
        sections.append(section)
        videos, plots = videos + v, plots + p
    files, count = _files_section(folder)
    sections.append(files)
    if notes:
        sections.insert(0, _notes_section(notes))
    title = title or f"dataset · {shown_name(str(doc.get('root') or folder), 'dataset')}"  # a hub id, else its name
    counts = (f"{plural(len(doc.get('shown', [])), 'episode')} shown · {plural(videos, 'video')} · "
              f"{plural(plots, 'plot')} · {plural(count, 'file')}")
    return page_html(title, "dataset show", counts, sections)
