"""A dataset's card: README.md with the Hugging Face hub's YAML front matter, as lerobot writes one when it pushes a
dataset, so a dataset copied to the hub is found by its search (`task_categories: robotics`, the `LeRobot` tag) and
shown by its viewer (`configs`: the data files), and says what it holds and how it was made.

Every fact comes from what the dataset already records, each from one place: its numbers, features and tasks from
the metadata (`LeRobotDataset.summary`, `tasks`), how worldpolicy made it from meta/worldpolicy_provenance.json, the
units of features whose names are the columns of an embodiment the dataset names (`recorded_units`) from that
embodiment, and meta/info.json as it is, as lerobot's card shows it. What none of them records is left out, never
guessed: the license is the package's own for a recording of worldpolicy's own simulation (`dataset from-sim`), the
source's for a dataset made from one (`source_terms`, recorded in the provenance by `convert`, `select`, `merge` and
`label`), the dataset's own meta/info.json `license`, else said to be unknown.
`LeRobotDatasetWriter` writes the card into its staging folder, so a dataset is whole, card included, or absent; a
dataset made from others (`dataset select`, `merge`, `label`) is a new dataset and gets a card of its own, never a
source's README.md. Reading never needs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import brief_list
from ..extras import package_license
from ..fileio import MODEL_CARD_FILE
from ..hub import dataset_source, shared_record
from .layout import DATA_PATH, INFO_PATH

if TYPE_CHECKING:
    from .lerobot import LeRobotDataset

CARD_FILE = MODEL_CARD_FILE  # where the hub reads a card, a dataset's as a model's: README.md
TAGS = ["LeRobot", "worldpolicy"]  # lerobot tags every dataset it pushes `LeRobot`: the hub's robotics listing
# the hub's dataset viewer reads the frames' parquet files (lerobot's `configs`), wherever the chunks put them
DATA_FILES = re.sub(r"[\w-]*\{[^}]*\}", "*", DATA_PATH)  # data/*/*.parquet
SHOWN_TASKS = 20  # the tasks a card lists by name; the rest are counted
# the column names (and units) a features table row lists in full: a served run's `action_chunk` has 256, a row
# as wide as a page of text; a longer list shows its first and last ones and its count (meta/info.json has them all)
SHOWN_COLUMNS = 16
LICENSE_KEY = "license"  # a dataset's license: its card's front matter (the hub's, lerobot's), or meta/info.json's
# what a provenance records of its sources' terms (`source_terms`): the card's License and Citation say it, not its
# How it was made
TERMS_KEYS = (LICENSE_KEY, "licenses", "citations")
# a card's citation, as lerobot's dataset card holds one (`## Citation`, a bibtex block; its placeholder is no entry)
BIBTEX = re.compile(r"```bibtex\s*\n(@.*?)```", re.DOTALL)


def dataset_card(ds: LeRobotDataset, name: str) -> str:
    """The card's text for `ds`, published as `name` (it is written in a staging folder): front matter, what the
    dataset holds, how it was made, how to read it, and info.json."""
    from huggingface_hub import DatasetCardData

    from .from_sim import SOURCE as SIM_SOURCE

    summary, provenance = ds.summary(), ds.provenance or {}
    source = provenance.get("source")
    tags = [*TAGS, *(tag for tag in (ds.robot_type, provenance.get("task")) if isinstance(tag, str) and tag)]
    own = _license_of(ds.info.get(LICENSE_KEY))
    if source == SIM_SOURCE:  # worldpolicy's own simulation's output
        license, said = package_license(), "worldpolicy's own simulation, under the package's license"
    elif isinstance(provenance.get(LICENSE_KEY), str):
        license, said = provenance[LICENSE_KEY], "the license of the dataset it was made from (its card or info.json)"
    else:
        license, said = own, "as meta/info.json records it"
    data = DatasetCardData(license=license, task_categories=["robotics"], tags=list(dict.fromkeys(tags)),
                           configs=[{"config_name": "default", "data_files": DATA_FILES}])
    parts = [f"---\n{data.to_yaml()}\n---\n", f"# {name}\n", _what(ds, summary, source), _tasks(ds),
             _features(ds, summary), _made(provenance), _terms(license, said, provenance), _usage(name), _info(ds)]
    return "\n".join(part for part in parts if part)


def _license_of(value: Any) -> str | None:
    """A license as a card's front matter or info.json gives it: a string, or a list of them (joined); else None."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return ", ".join(v.strip() for v in value)
    return None


def dataset_terms(root: str | Path, info: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The license and citations the dataset at `root` records itself: its card's (README.md: the front matter's
    `license`, each bibtex block that holds an entry, as lerobot's and this module's cards hold them), its
    meta/info.json `license` where the card has none; (None, []) where it records neither. A card that cannot be
    read records none."""
    import yaml
    from huggingface_hub.repocard import metadata_load

    card = Path(root) / CARD_FILE
    try:
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        front = metadata_load(card) if text else None  # the front matter, as the hub reads it
    except (ValueError, yaml.YAMLError):  # not a mapping, or no YAML: its bibtex blocks are still read
        front = None
    license = _license_of(front.get(LICENSE_KEY)) if isinstance(front, dict) else None
    return license or _license_of(info.get(LICENSE_KEY)), [entry.strip() for entry in BIBTEX.findall(text)]


def source_terms(sources: Sequence[LeRobotDataset]) -> dict[str, Any]:
    """What a dataset made from `sources` (`dataset convert`, `select`, `label`: one; `merge`: several) records of
    their terms in its provenance, for its card: `license` where every source records the same one; where they differ
    (or only some record one), `licenses`, each source's (`hub.dataset_source`) or None, and no one license claimed;
    `citations`, each source's, once. Nothing for sources that record neither."""
    terms = [dataset_terms(ds.root, ds.info) for ds in sources]
    licenses = [license for license, _ in terms]
    citations = list(dict.fromkeys(entry for _, entries in terms for entry in entries))
    found: dict[str, Any] = {}
    if licenses[0] is not None and len(set(licenses)) == 1:
        found[LICENSE_KEY] = licenses[0]
    elif any(license is not None for license in licenses):
        found["licenses"] = {dataset_source(ds.root): license for ds, license in zip(sources, licenses)}
    return {**found, **({"citations": citations} if citations else {})}


def _terms(license: str | None, said: str, provenance: Mapping[str, Any]) -> str:
    """The card's license (`license`, as `said`; the sources' where they differ; else unknown) and citations."""
    lines = ["## License\n"]
    differing = provenance.get("licenses")
    if license is not None:
        lines.append(f"`{license}`: {said}.")
    elif isinstance(differing, dict) and differing:
        lines.append("The datasets it was made from record different licenses, so no one license is claimed for it; "
                     "each one's episodes keep their own terms:\n")
        lines += [f"- {json.dumps(source)}: " + (f"`{found}`" if isinstance(found, str) else "unknown")
                  for source, found in differing.items()]
    else:
        lines.append("Unknown: nothing it was made from records a license. Check the terms of its sources before "
                     "sharing it.")
    citations = [entry for entry in provenance.get("citations") or [] if isinstance(entry, str)]
    if citations:
        lines += ["", "## Citation\n", "Cite the data it was made from:", ""]
        lines += [f"```bibtex\n{entry}\n```" for entry in citations]
    return "\n".join(lines) + "\n"


def _what(ds: LeRobotDataset, summary: Mapping[str, Any], source: Any) -> str:
    from ..viz.plots import plural

    made = f"made by `{source}`" if isinstance(source, str) else "written by worldpolicy"
    lines = [f"A LeRobot {summary['codebase_version']} dataset {made}: {plural(summary['episodes'], 'episode')}, "
             f"{plural(summary['frames'], 'frame')} at {summary['fps']:g} fps"
             + (f", robot `{ds.robot_type}`" if ds.robot_type else "") + "."]
    length = summary.get("episode_length")
    if length and length["min"] == length["max"]:  # one episode (a served run's first), or all alike
        each = "The episode" if summary["episodes"] == 1 else "Each episode"
        lines.append(f"{each} runs {plural(length['min'], 'frame')}.")
    elif length:
        lines.append(f"Episodes run {length['min']} to {length['max']} frames (mean {length['mean']:.1f}).")
    success = summary.get("success")
    if success:
        failed = success["failed_episodes"]
        lines.append(f"{success['succeeded']} of {summary['episodes']} episodes succeeded (meta/episodes' `success`)"
                     + (f"; failed: {brief_list(failed)}." if failed else "."))
    return "\n".join(lines) + "\n"


def _tasks(ds: LeRobotDataset) -> str:
    shown = [f"- {json.dumps(task, ensure_ascii=False)}" for task in ds.tasks[:SHOWN_TASKS]]
    more = [f"- and {len(ds.tasks) - SHOWN_TASKS} more (meta/tasks.parquet)"] if len(ds.tasks) > SHOWN_TASKS else []
    return "\n".join([f"## Tasks ({len(ds.tasks)})\n", *shown, *more]) + "\n"


def _features(ds: LeRobotDataset, summary: Mapping[str, Any]) -> str:
    units = recorded_units(ds)
    lines = ["## Features\n", "| feature | dtype | shape | names | units |", "|---|---|---|---|---|"]
    for key, spec in summary["features"].items():
        names = spec.get("names")
        lines.append(f"| `{key}` | {spec['dtype']} | {spec['shape']} | "
                     f"{_columns(names) if isinstance(names, list) else ''} | "
                     f"{_columns(units[key]) if key in units else ''} |")
    codecs = summary.get("video_codecs")
    if codecs:
        lines += ["", "Videos: " + ", ".join(f"`{key}` {codec}" for key, codec in codecs.items()) + "."]
    return "\n".join(lines) + "\n"


def _columns(values: list[Any]) -> str:
    """A feature's column names (or units) for its table row: all of them up to `SHOWN_COLUMNS`, else the first and
    the last two around an ellipsis, with the count."""
    text = [str(value) for value in values]
    if len(text) <= SHOWN_COLUMNS:
        return ", ".join(text)
    return (f"{', '.join(text[:SHOWN_COLUMNS - 4])}, …, {', '.join(text[-2:])} ({len(text)} in all: "
            f"meta/info.json)")


def recorded_units(ds: LeRobotDataset) -> dict[str, list[str]]:
    """Per numeric feature, its columns' units where a run of consecutive features' names is the columns of an
    embodiment the dataset names (the card's features table, `dataset show`'s plots as recorded): the provenance's
    `columns` and `units` (`dataset label`), its `embodiment`, and for a sim recording the joint layout `dataset
    from-sim` writes (`actions.DEFAULT_SOURCE`); then, the dataset's own first, those of the datasets it was made
    from (`dataset_provenance`: `select`, `merge` and `label` copy their sources' features); none else (never
    guessed)."""
    from ..embodiments import get_embodiment
    from .actions import DEFAULT_SOURCE
    from .from_sim import SOURCE as SIM_SOURCE

    given: list[tuple[list[Any], list[Any]]] = []
    for provenance in _provenance_chain(ds.provenance):
        if isinstance(provenance.get("columns"), list) and isinstance(provenance.get("units"), list):
            given.append((provenance["columns"], provenance["units"]))
        names = [provenance.get("embodiment"), DEFAULT_SOURCE if provenance.get("source") == SIM_SOURCE else None]
        for name in (n for n in names if isinstance(n, str)):
            try:
                emb = get_embodiment(name)
            except (KeyError, ValueError):  # registered by the recording's own process: its units are not known here
                continue
            given.append((list(emb.columns), list(emb.units)))
    found: dict[str, list[str]] = {}
    numeric = [k for k in ds.feature_keys if ds.features[k]["dtype"] != "string"]
    for columns, units in (pair for pair in given if len(pair[0]) == len(pair[1])):
        for start in range(len(numeric)):
            run: list[str] = []
            for end in range(start, len(numeric)):
                run += ds.feature_names([numeric[end]])
                if run == [str(c) for c in columns]:
                    at = 0
                    for key in numeric[start:end + 1]:
                        width = ds.features[key]["shape"][0]
                        found.setdefault(key, [str(u) for u in units[at:at + width]])
                        at += width
                if len(run) >= len(columns):
                    break
    return found


def _provenance_chain(provenance: Any) -> list[Mapping[str, Any]]:
    """`provenance` and, after it, its sources' own (`dataset_provenance`: one of `select` and `label`, a list of
    `merge`), theirs after them, and so on: how each dataset along the way was made."""
    chain: list[Mapping[str, Any]] = []
    pending = [provenance]
    while pending:
        item = pending.pop(0)
        if isinstance(item, Mapping):
            chain.append(item)
            sources = item.get("dataset_provenance")
            pending += sources if isinstance(sources, list) else [sources]
    return chain


def _made(provenance: Mapping[str, Any]) -> str:
    """How worldpolicy made it, in brief (the whole record, every seed included, is meta/worldpolicy_provenance.json):
    each plain setting as `push` sends the record (`hub.shared_record`: a path by its name, in the command line too,
    and no `cwd`, whose name may be its user's), the longer ones (lists, objects) named."""
    if not provenance:
        return ""
    shared = shared_record({k: v for k, v in provenance.items() if k not in TERMS_KEYS})
    plain = [f"`{key}` {json.dumps(value, ensure_ascii=False)}" for key, value in shared.items()
             if key != "source" and not isinstance(value, (list, dict))]
    nested = [f"`{key}`" for key, value in shared.items() if isinstance(value, (list, dict))]
    lines = ["## How it was made\n", "[meta/worldpolicy_provenance.json](meta/worldpolicy_provenance.json)"
             + (": " + "; ".join(plain) if plain else "") + "."]  # a merge's records are lists alone
    if nested:
        lines.append(f"It also records {', '.join(nested)}.")
    return "\n".join(lines) + "\n"


def _usage(name: str) -> str:
    return "\n".join([
        "## How to read it\n",
        "```python",
        "from worldpolicy.data import LeRobotDataset",
        "",
        f"ds = LeRobotDataset.open(\"path/to/{name}\")  # or, on the hub, its id: \"OWNER/{name}\"",
        "ep = ds.episode(0)  # ep.frames[feature]: [T, *shape]; ep.videos[camera]: uint8 [T, H, W, 3]",
        "```\n",
        "lerobot reads it too: `lerobot.datasets.lerobot_dataset.LeRobotDataset(repo_id, root=...)`.",
    ]) + "\n"


def _info(ds: LeRobotDataset) -> str:
    return "\n".join(["## Structure\n", f"[{INFO_PATH}]({INFO_PATH}):", "```json",
                      json.dumps(ds.info, indent=4, ensure_ascii=False), "```"]) + "\n"
