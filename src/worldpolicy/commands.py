"""Core subcommands: `predict`, `demo`, `embodiments`."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embodiments", help="list the embodiment registry")
    p.add_argument("--json", action="store_true", help="print the full registry as JSON")
    p.set_defaults(func=_embodiments)


def _embodiments(args: argparse.Namespace) -> int:
    from .embodiments import get_embodiment, list_embodiments

    rows = []
    for name in list_embodiments():
        base = get_embodiment(name)
        for variant in base.variants or (base.variant,):
            rows.append(get_embodiment(name, variant if base.variants else None))
    if args.json:
        print(json.dumps([e.to_dict() for e in rows], indent=1))
        return 0
    header = f"{'embodiment':<28} {'domain':<22} {'id':>3} {'dim':>4} {'chunk':>5} {'fps':>5}  {'norm':<9} layout"
    print(header)
    print("-" * len(header))
    for e in rows:
        print(
            f"{e.key:<28} {e.domain:<22} {e.domain_id:>3} {e.action_dim:>4} {e.chunk_size:>5} {e.fps:>5g}  "
            f"{e.normalization:<9} {e.layout}"
        )
    return 0
