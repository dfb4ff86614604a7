"""How the router handles each upstream fault, as the client sees it: one run of every scenario of
``tests/fault_scenarios.py`` (the table ``tests/test_faults.py`` asserts), printed as a table of what the client
saw, how long until it had a good answer or a clear error, and the deadline that governs it.

    .venv/bin/python bench/faults.py              # a Markdown table
    .venv/bin/python bench/faults.py --json faults.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fault_scenarios import SCENARIOS, Scenario, Seen, run


def verdict(scenario: Scenario, seen: Seen) -> str:
    expect = scenario.expect
    ok = (seen.status, seen.ending) == (expect.status, expect.ending) and \
        (expect.llm is None or seen.llm == expect.llm) and (expect.code is None or seen.code == expect.code) and \
        seen.loser_cancelled == ("hedge_after" in scenario.primary) and \
        scenario.at_least <= seen.seconds <= scenario.bound
    return "pass" if ok else "FAIL"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = []
    for scenario in SCENARIOS:
        seen, _, _ = await run(scenario)
        rows.append({"scenario": scenario.name, "client_saw": seen.describe(), "seconds": round(seen.seconds, 3),
                     "deadline": scenario.deadline_label, "verdict": verdict(scenario, seen)})
    print("| scenario | client saw | time to good answer / clear error | configured deadline | |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['scenario']} | {row['client_saw']} | {row['seconds'] * 1000:.0f} ms | {row['deadline']} "
              f"| {row['verdict']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(row["verdict"] == "pass" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
