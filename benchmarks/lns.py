"""Does a large-neighbourhood search find the counterexamples the attack misses?  Measured, not
built: on the queries the default leaves open, LNS with branch and bound as its exact
sub-solver against the attack alone, for the same time.

    python benchmarks/lns.py [--models fashion-mlp-small,fashion-conv-small] [--eps 5,10,20]
        [--per-model 40] [--timeout 20] [--bits 24] [--sub-timeout 3] [--jobs 2] [--record]

Queries: per model, the first ``--per-model`` queries the newest ``hard*`` record's default
config left ``unknown`` at the given eps (``tail.open_queries``: smallest box first).  Each is
searched twice, ``--timeout`` seconds each, one thread (``--jobs`` queries at once):

    attack   ``bnnlogic.attack`` on seed 8 (the seed a race's hunt gets)
    lns      rounds of: the attack's local search (stage 3, 2 s; it keeps its best input, the
             *elite* with the largest gap ``max_bad score - max_good score``), then 4
             neighbourhoods of the elite, each decided exactly by ``logic.bab`` (at most
             ``--sub-timeout`` s): every feature keeps its elite value except a set N that
             takes its whole range in the box, N drawn by the gap of each feature's best single
             move from the elite (Gumbel noise on the ranking) until the neighbourhood has
             2^--bits threshold cells.  A ``sat`` is a counterexample of the whole box.

Every hit is replayed (``verification._replay``).  Per row: model, image, eps, box cells, and
per method hit / seconds; the summary counts hits per model and eps.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.attack import (ENGINE_MOVES, Relaxed, Space, _first_margins, _gap, _local_search,  # noqa: E402
                             _moves, _score_moves, _Search, attack)
from bnnlogic.blas import one_blas_thread  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.logic.bab import bab  # noqa: E402
from bnnlogic.logic.region import Region  # noqa: E402
from bnnlogic.verification import _replay, make_region  # noqa: E402
from models import get_model  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402
from tail import add_open_query_arguments, open_queries  # noqa: E402

HUNT_SEED = 8
LOCAL_S = 2.0
NEIGHBOURHOODS = 4


def lns(model, R: Region, bad: list[int], timeout: float, bits: float, sub_timeout: float,
        seed: int = 0) -> np.ndarray | None:
    """A raw input of R predicted in ``bad`` by the module docstring's LNS, or None."""
    ir, t_end = model.ir, time.perf_counter() + timeout
    mask = np.isin(np.arange(ir.n_classes), bad)
    S = Space.of(ir, R)
    rng = np.random.default_rng(seed)
    q = _Search(Relaxed(ir, S.x0, S.bits(ir)), S, mask, model.engine, rng, 32, 10 ** 9)
    width = np.log2(S.hi - S.lo + 1.0)  # a feature's threshold cells, log2
    with one_blas_thread():
        while time.perf_counter() < t_end:
            L = _local_search(q, min(t_end, time.perf_counter() + LOCAL_S))
            if L is not None:
                return S.raw(L)[0]
            if q.elite is None:
                continue
            elite = q.elite[1]
            feat, to = _moves(S, elite)
            gain = np.full(S.n, -np.inf)  # per feature, the gap of its best single move
            s0 = _first_margins(q, elite)
            for c in range(0, len(feat), ENGINE_MOVES):
                scores, _ = _score_moves(q, elite, s0, feat[c:c + ENGINE_MOVES], to[c:c + ENGINE_MOVES])
                np.maximum.at(gain, feat[c:c + ENGINE_MOVES], _gap(q, scores))
            spread = np.std(gain[np.isfinite(gain)]) + 1e-9
            x = S.raw(elite[None])[0]
            for _ in range(NEIGHBOURHOODS):
                left = t_end - time.perf_counter()
                if left <= 0:
                    break
                order = np.argsort(-(gain + spread * rng.gumbel(size=S.n)))
                take = order[: max(1, int(np.searchsorted(np.cumsum(width[order]), bits)))]
                lo, hi, f = x.copy(), x.copy(), S.feats[take]
                lo[f], hi[f] = R.lo[f], R.hi[f]
                status, w, _ = bab(model.engine, ir, Region(lo, hi, x, None, "box", R.eps), bad,
                                   timeout=min(sub_timeout, left), threads=1)
                if status == "sat":
                    return w
    return None


@cache
def model_and_data(name: str):
    """The model and its data set, read once per worker process (the test set takes ~0.4 s)."""
    model = get_model(name)
    return model, load_dataset(model.meta["dataset"])


def run(name: str, qr: dict, timeout: float, bits: float, sub_timeout: float) -> dict:
    """One open query (a ``hard`` record's row): the attack, then LNS, each ``timeout`` s."""
    model, data = model_and_data(name)
    i, eps = qr["index"], qr["eps"]
    x, label = data.X_test[i].reshape(-1).astype(np.int64), int(data.y_test[i])
    R, bad = make_region(model, x, eps), [c for c in range(model.ir.n_classes) if c != label]
    row = {"model": name, "index": i, "eps": eps, "log2_cells": qr["log2_cells"]}
    for method in ("attack", "lns"):
        t0 = time.perf_counter()
        w = (attack(model.engine, model.ir, R, bad, seed=HUNT_SEED, timeout=timeout) if method == "attack"
             else lns(model, R, bad, timeout, bits, sub_timeout))
        if w is not None:
            _replay(model, R, bad, w, method)
        row[method] = {"hit": w is not None, "time_s": round(time.perf_counter() - t0, 3)}
    print(row, file=sys.stderr, flush=True)
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Per (model, eps): open queries searched, hits of each method, hits of LNS alone."""
    out = []
    for m, e in sorted({(r["model"], r["eps"]) for r in rows}):
        rs = [r for r in rows if (r["model"], r["eps"]) == (m, e)]
        out.append({"model": m, "eps": e, "queries": len(rs), "attack_hits": sum(r["attack"]["hit"] for r in rs),
                    "lns_hits": sum(r["lns"]["hit"] for r in rs),
                    "lns_only": [r["index"] for r in rs if r["lns"]["hit"] and not r["attack"]["hit"]]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_open_query_arguments(ap, "5,10,20", 40)
    ap.add_argument("--timeout", type=float, default=20, help="seconds per method and query")
    ap.add_argument("--bits", type=float, default=24, help="log2 threshold cells of a neighbourhood")
    ap.add_argument("--sub-timeout", type=float, default=3, help="seconds of branch and bound per neighbourhood")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="queries searched at once")
    add_record_argument(ap)
    a = ap.parse_args(argv)
    eps = [int(e) for e in a.eps.split(",")]
    jobs = [(m, q) for m in a.models.split(",") for q in open_queries(m, eps)[: a.per_model]]
    with ProcessPoolExecutor(a.jobs) as pool:  # one query per process, one thread each
        rows = list(pool.map(run, *zip(*jobs), *([v] * len(jobs) for v in (a.timeout, a.bits, a.sub_timeout))))
    from render import lns_tables

    summ = {"rows": summary(rows), "settings": {k: v for k, v in vars(a).items() if k != "record"}}
    print("\n".join(lns_tables({"summary": summ, "rows": rows})))
    if a.record:
        print("record:", save_record("lns", summ, rows, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
