"""`msnlan variants`: list the registered variants, or print one resolved."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("variants", help="list registered variants or show one resolved (JSON)")
    p.add_argument("name", nargs="?", help="a variant name or YAML path to resolve")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..variants import list_variants, resolve_variant, variant_hash

    if args.name is None:
        for name in list_variants():
            print(name)
        return 0
    resolved = resolve_variant(args.name)
    resolved["hash"] = variant_hash(resolved)
    print(json.dumps(resolved, indent=2))
    return 0
