"""The long reliability run: random queries against brute force, fuzzed CLI calls, killed batches.

    python benchmarks/reliability.py [--cases 10000] [--fuzz-rounds 5] [--kills 30] [--record]

1. ``--cases`` random tiny queries (tests/oracle.py: dense, conv, max-pool, ternary, 1-3 input
   levels; L-inf, L0, mask and box regions; allowed sets; miters), every part and every
   backend, each compared with enumeration: disagreements must be 0.
2. ``--fuzz-rounds`` rounds of fuzzed files and arguments (tests/fuzz.py, a new random seed
   each round), each call in its own process with a time limit: crashes (a traceback, no
   error line, a hang) must be 0.
3. a verify batch (``--batch-cmd`` takes any resumable batch command) SIGKILLed at random
   moments ``--kills`` times, resumed to the end, compared with an uninterrupted run: lost,
   duplicated or torn lines and changed verdicts must be 0 (the counterexample found may differ:
   the racing engines may find another one first).
Prints the three counts; ``--record`` writes benchmarks/records/reliability/.
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import save_record  # noqa: E402
from tests.fuzz import bad_outcome, fuzz_files, run_cli  # noqa: E402
from tests.helpers import random_ir, result_lines, run_killed  # noqa: E402
from tests.oracle import check_case, random_case  # noqa: E402


def cases(n: int, start: int) -> dict:
    kinds, bad, t0 = collections.Counter(), [], time.perf_counter()
    for seed in range(start, start + n):
        case = random_case(seed)
        kinds[f"{case.kind}/{case.R.norm}"] += 1
        try:
            out = check_case(case)
        except Exception as e:  # a crash is a disagreement too
            out = [f"{type(e).__name__}: {e}"]
        bad += [{"seed": seed, "what": o} for o in out]
        if (seed - start + 1) % 100 == 0:
            print(f"\rcases {seed - start + 1}/{n}, disagreements {len(bad)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {"cases": n, "disagreements": len(bad), "failures": bad[:50], "by_kind": dict(kinds),
            "seconds": time.perf_counter() - t0}


def fuzz(rounds: int, folder: Path) -> dict:
    from bnnlogic import Model

    model = folder / "m.bnn"
    Model(random_ir(3, n_features=64, hi=16, levels=2, hidden=(8,), n_classes=10)).save(model)
    tried, crashes = 0, []
    for r in range(rounds):
        rng = np.random.default_rng(r)
        for argv in fuzz_files(folder / f"round{r}", model, rng.integers(0, 17, 64), rng):
            tried += 1
            try:
                why = bad_outcome(*run_cli(argv, timeout=120))
            except Exception as e:  # the time limit: a hang
                why = f"{type(e).__name__}"
            if why:
                crashes.append({"argv": argv, "why": why})
    return {"inputs": tried, "crashes": len(crashes), "failures": crashes[:50]}


def kills(n: int, folder: Path, cmd: list[str] | None) -> dict:
    from bnnlogic import Model

    model = folder / "k.bnn"
    Model(random_ir(4, n_features=64, hi=16, levels=2, hidden=(12, 8), n_classes=10, p_zero=0.6)).save(model)
    base = cmd or [sys.executable, "-m", "bnnlogic", "verify", str(model), "--data", "digits", "--indices", "0:360",
                   "--eps", "1,2,3", "--timeout", "10", "--json"]
    run_killed(base + ["--out", str(folder / "ref.jsonl")], kills=0)
    hit = run_killed(base + ["--out", str(folder / "killed.jsonl")], kills=n, seed=7, delay=(0.0, 0.2),
                     watch=folder / "killed.jsonl")  # each kill lands after the run's first new line
    ref, got = result_lines(folder / "ref.jsonl"), result_lines(folder / "killed.jsonl")
    # a query is (index, eps); which counterexample (and adversarial class) a race finds first
    # may change between runs, its verdict may not
    keys = collections.Counter((r["index"], r["eps"]) for r in got)
    status = {(r["index"], r["eps"]): r["status"] for r in got}
    return {"kills": n, "kills_hit": hit, "lines": len(got), "expected": len(ref),
            "duplicated": sum(v - 1 for v in keys.values() if v > 1),
            "lost": sum((r["index"], r["eps"]) not in keys for r in ref),
            "differ": sum(status.get((r["index"], r["eps"]), r["status"]) != r["status"] for r in ref)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--start", type=int, default=1_000_000, help="first seed (the CI test draws others)")
    ap.add_argument("--fuzz-rounds", type=int, default=5)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--batch-cmd", nargs="+", help="the batch command to kill (without --out)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = {"oracle": cases(args.cases, args.start), "fuzz": fuzz(args.fuzz_rounds, Path(tmp)),
                   "kill": kills(args.kills, Path(tmp), args.batch_cmd)}
    o, f, k = summary["oracle"], summary["fuzz"], summary["kill"]
    print(f"cases {o['cases']}: {o['disagreements']} disagreements with brute force ({o['seconds']:.0f} s)\n"
          f"fuzzed inputs {f['inputs']}: {f['crashes']} crashes\n"
          f"kills {k['kills']} ({k['kills_hit']} hit a running batch): {k['lost']} lost, {k['duplicated']} duplicated, "
          f"{k['differ']} different of {k['expected']} lines")
    if args.record:
        print("record:", save_record("reliability", summary, []))


if __name__ == "__main__":
    main()
