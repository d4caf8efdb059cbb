"""`bnnlogic demo`: the main job on the embedded digits data set (no download)."""
from __future__ import annotations

from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("demo", help="train, evaluate, verify and explain a BNN on embedded digits (no download)",
                       description="The tour: trains a small BNN on scikit-learn's digits, checks that its exact "
                                   "integer form agrees with the trained network, verifies robustness of a few "
                                   "test images and explains a decision. Writes a markdown report and pictures.")
    p.add_argument("--out", default="bnnlogic-demo", help="report folder (default: bnnlogic-demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 40)")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DEMO_EPOCHS, run_demo

    quiet = args.json
    report = run_demo(args.out, epochs=args.epochs or DEMO_EPOCHS, seed=args.seed, progress=not quiet,
                      log=(lambda *a: None) if quiet else print)
    if quiet:
        emit(report, True)
    return 0
