"""Prompt caching: what session affinity saves over round robin, turn by turn.

    python bench/cache.py                        # 20 sessions x 10 turns, a pool of 3 keys
    python bench/cache.py --sessions 4 --turns 3

Coding sessions (the whole conversation every turn, as Claude Code sends it) go through the
gateway, in-process, to a provider that caches prompt prefixes per key for 300 s, as Anthropic
and OpenAI do (tests/prefix_cache.py), over a pool of three keys picked by `round_robin`, by
`affinity` (the default), and by `affinity` with one key revoked before a turn of the run. For
each turn it prints, as a Markdown table, the hit ratio (cache read tokens over every input
token, the Overview dashboard's figure) and the input cost: billed input tokens per session,
a cached token at a tenth of an uncached one. The clock is a fake one: the figures are
token counts, the same on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.coding_sessions import CACHED_PRICE, KEYS, Sessions, Turn


def hit_ratio(turns: list[Turn]) -> float:
    return sum(t.read for t in turns) / sum(t.prompt for t in turns)


def cost(turns: list[Turn], sessions: int) -> float:
    """Billed input tokens per session."""
    return sum(t.cost for t in turns) / sessions


async def measure(strategy: str, args: argparse.Namespace, revoke_at: int = 0) -> Sessions:
    run = Sessions(strategy, args.sessions, args.output_tokens)

    def revoke(n: int) -> None:
        if n == revoke_at:
            run.fake.revoked.add(KEYS[1])

    before: Callable[[int], None] | None = revoke if revoke_at else None
    await run.run(range(1, args.turns + 1), before=before)
    return run


def table(runs: dict[str, Sessions], sessions: int, turns: int) -> list[str]:
    head = "| turn | " + " | ".join(f"{name}: hit ratio | input cost" for name in runs) + " |"
    lines = [head, "|---:" + "|---:|---:" * len(runs) + "|"]
    for n in range(1, turns + 1):
        cells = [
            f"{hit_ratio(r.at(n)):.0%} | {cost(r.at(n), sessions):,.0f}" for r in runs.values()
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    every = {name: [t for n in range(1, turns + 1) for t in r.at(n)] for name, r in runs.items()}
    cells = [f"**{hit_ratio(t):.0%}** | **{cost(t, sessions):,.0f}**" for t in every.values()]
    lines.append("| all | " + " | ".join(cells) + " |")
    whole = [f"{r.hit_ratio():.0%} | " for r in runs.values()]
    lines.append("| turns 2+ reading the whole previous turn | " + " | ".join(whole) + " |")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--output-tokens", type=int, default=1000, help="tool output per turn")
    parser.add_argument("--revoke-at", type=int, default=6, help="a key is revoked before it")
    args = parser.parse_args()
    revoked = f"affinity, key b revoked at turn {args.revoke_at}"
    runs = {
        "round robin": await measure("round_robin", args),
        "affinity": await measure("affinity", args),
        revoked: await measure("affinity", args, args.revoke_at),
    }
    print(
        f"{args.sessions} sessions x {args.turns} turns over a pool of {len(KEYS)} keys, "
        f"about {args.output_tokens} tokens of tool output a turn; input cost = billed input "
        f"tokens per session, a cached token at {CACHED_PRICE:g} of an uncached one"
    )
    print("\n".join(table(runs, args.sessions, args.turns)))


if __name__ == "__main__":
    asyncio.run(main())
