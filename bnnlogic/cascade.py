"""Two-BNN bounding cascade in front of a float network (DNN) for a yes/no decision.

The task is "class C vs the rest" (yes = 1, no = 0).  Two 2-class BNNs read the same raw
inputs; with m(x) = score_1(x) - score_0(x) (exact integers, ties to class 0 = no):

    lower  says yes  <=>  m_lower(x) > 0     (trained so that it says yes only when confident)
    upper  says no   <=>  m_upper(x) <= 0    (trained so that it says no only when confident)

    cascade(x) = yes      if lower says yes
                 no       elif upper says no
                 DNN(x)   else ("unknown": the float network decides)

**Calibration** (``calibrate``) makes "confident" exact on the calibration inputs (labelled
by the *DNN*'s yes/no): the yes-offset of the lower BNN is shifted by an integer delta so that
m_lower + delta > 0 on no DNN-no input (delta = -max m_lower over DNN-no inputs), and that of
the upper BNN so that m_upper + delta > 0 on every DNN-yes input (delta = 1 - min m_upper over
DNN-yes inputs).  A shifted offset is an ordinary IR, so everything below is about the saved
integer networks.

``calibrate_shared`` instead takes *one* BNN with two thresholds on its margin
(lower: m > a, upper: m <= b, a >= b), a pair that is consistent by construction.

**Split calibration** (``split``, ``guarantee``): the BNNs are trained on one part of the
training split and calibrated on the other, held-out part H, which they never saw.  A new
input x drawn from the same distribution as H is then exchangeable with H's inputs, and the
split-conformal argument bounds the cascade's disagreements with the DNN on it:

    P(lower says yes on x | DNN(x) = no)  <=  1 / (n_no + 1)
    P(upper says no  on x | DNN(x) = yes) <=  1 / (n_yes + 1)

with n_no, n_yes the DNN-no and DNN-yes inputs of H (the threshold is the largest no-margin,
resp. the smallest yes-margin, of H: x's margin passes it only if it is the extreme of the
n + 1 exchangeable margins, probability <= 1 / (n + 1), ties included).  This is a statement
about the distribution, not about every input: junk inputs far from the data carry none.  A
**guard** of g integer margin units per side narrows the decided band further (fewer inputs
decided; the bound still holds).  The bound holds for any BNN that did not see H; a threshold
at the extreme of H moves with one odd input, and the score sum of a few BNNs
(``bnnlogic.ensemble``, itself one BNN) has fewer such extremes.

**Consistency** (``consistent``): the pair never says lower = yes while upper = no, on
*every* raw input of the domain, i.e. ``verify.equivalent(lower, upper, implies=([1], [1]))``
is "equivalent".  Otherwise the witness (replayed through both engines) is the
counterexample; "unknown" when the time limit runs out.  Consistency is what makes the
rule order irrelevant: on a consistent pair the two BNNs never contradict each other.

**Region decided** (``region_decided``): the BNNs alone decide a whole region R (an eps-box)
when lower says yes on all of R ("yes") or upper says no on all of R ("no"); each is a
``verify.verify_region`` proof.

A cascade is a folder: ``lower.bnn``, ``upper.bnn``, the DNN file (``dnn.pt`` or
``dnn.onnx``, copied) and ``cascade.json`` (format, positive class, calibration, metrics).
Multi-class: one cascade per class (each its own folder); an input is decided when exactly
one class's lower BNN says yes, or all but one class's upper BNNs say no (not built here).

This module imports no torch; the DNN is loaded lazily (``bnnlogic.nn.floatnet``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import UserError
from .fileio import write_json
from .model import Model

FORMAT = "bnnlogic-cascade"
VERSION = 1
YES, NO, UNKNOWN = 1, 0, -1


def margin(model: Model, X: np.ndarray) -> np.ndarray:
    """m(x) = score_1 - score_0 of a 2-class model (int64); it says yes iff m > 0."""
    s = model.scores(X)
    return s[:, 1] - s[:, 0]


def shift_yes(model: Model, delta: int) -> Model:
    """The same network with ``delta`` added to the yes-offset (m -> m + delta)."""
    out = model.ir.output
    offset = out.offset.copy()
    offset[1] += int(delta)
    ir = dataclasses.replace(model.ir, output=dataclasses.replace(out, offset=offset))
    return Model(ir, dict(model.meta), model.torch_state)


def calibrate(model: Model, X: np.ndarray, target: np.ndarray, side: str, guard: int = 0) -> tuple[Model, int]:
    """Shift the yes-offset so that on X the lower BNN never says yes where target is no
    (``side="lower"``), or the upper BNN never says no where target is yes (``"upper"``), with
    ``guard`` >= 0 integer margin units to spare (lower: m + delta <= -guard on every no input;
    upper: m + delta > guard on every yes input)."""
    t = side_threshold(margin(model, X), target, side)
    delta = 0 if t is None else -(t + guard) if side == "lower" else -(t - guard)
    return shift_yes(model, delta), delta


def side_threshold(m: np.ndarray, target: np.ndarray, side: str) -> int | None:
    """The tightest threshold safe on the margins m: lower (yes iff m > a) a = max m over the no
    inputs, upper (no iff m <= b) b = min m over the yes inputs - 1; None if there are none."""
    target = np.asarray(target)
    if side == "lower":
        no = m[target == NO]
        return int(no.max()) if no.size else None
    if side == "upper":
        yes = m[target == YES]
        return int(yes.min()) - 1 if yes.size else None
    raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")


def thresholds(m: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    """(a, b) = (max(a_l, b_u), min(a_l, b_u)) with a_l, b_u the ``side_threshold`` of each side:
    the tightest shared thresholds safe on these inputs (lower yes iff m > a, upper no iff m <= b)."""
    a_l, b_u = side_threshold(m, target, "lower"), side_threshold(m, target, "upper")
    if a_l is None or b_u is None:
        raise UserError("calibration needs both yes and no inputs")
    return max(a_l, b_u), min(a_l, b_u)


def calibrate_shared(model: Model, X: np.ndarray, target: np.ndarray, guard: tuple[int, int] = (0, 0)
                     ) -> tuple[Model, Model, int, int]:
    """One network, two thresholds: lower says yes iff m > a, upper says no iff m <= b, with
    (a, b) = ``thresholds`` over X widened by ``guard`` = (g_lower, g_upper) >= 0: a += g_lower,
    b -= g_upper.

    Both are safe on X as with ``calibrate``, and a >= b makes the pair consistent on every
    input; margins between the two (unseen on X) are left to the DNN.  Returns (lower, upper, a, b).
    """
    a, b = thresholds(margin(model, X), target)
    a, b = a + guard[0], b - guard[1]
    return shift_yes(model, -a), shift_yes(model, -b), a, b


def split(n: int, holdout: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, hold): a seeded random split of range(n) into training rows and round(holdout * n)
    held-out calibration rows (both sorted; ``hold`` is empty for holdout = 0)."""
    if not 0 <= holdout < 1:
        raise UserError(f"the held-out fraction must be in [0, 1), got {holdout}")
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(holdout * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def guarantee(t_hold: np.ndarray) -> dict[str, Any]:
    """The split-conformal bounds of a cascade calibrated on held-out inputs whose DNN yes/no is
    ``t_hold`` (see the module docstring): ``false_yes_rate`` = 1 / (n_no + 1) bounds
    P(lower yes | DNN no), ``false_no_rate`` = 1 / (n_yes + 1) bounds P(upper no | DNN yes), for
    a new input from the held-out inputs' distribution."""
    t_hold = np.asarray(t_hold)
    n_no, n_yes = int((t_hold == NO).sum()), int((t_hold == YES).sum())
    return {"calibrated_on": int(t_hold.size), "no_inputs": n_no, "yes_inputs": n_yes,
            "false_yes_rate": 1.0 / (n_no + 1), "false_no_rate": 1.0 / (n_yes + 1)}


def expected_disagreements(g: dict[str, Any], dnn_yes: np.ndarray) -> float:
    """N_no * false_yes_rate + N_yes * false_no_rate of the ``guarantee`` g, with N_no, N_yes the
    DNN's no and yes answers ``dnn_yes``: the bound on the expected number of disagreements with
    the DNN on inputs drawn like the held-out calibration inputs."""
    n_yes = int(np.sum(dnn_yes))
    return (len(dnn_yes) - n_yes) * g["false_yes_rate"] + n_yes * g["false_no_rate"]


def _check_pair(lower: Model, upper: Model) -> None:
    for name, m in (("lower", lower), ("upper", upper)):
        if m.ir.n_classes != 2:
            raise UserError(f"the {name} BNN has {m.ir.n_classes} classes; a cascade needs 2-class (no/yes) BNNs")
    a, b = lower.ir.coding, upper.ir.coding
    if (a.feature_shape, a.lo, a.hi) != (b.feature_shape, b.lo, b.hi):
        raise UserError("the lower and upper BNNs take different raw inputs; they must share shape and domain")


def _offset_gap(lower: Model, upper: Model) -> int | None:
    """g with margin_upper(x) = margin_lower(x) + g for every x, when the two BNNs are one network
    up to their output offsets (a ``--shared`` cascade); else None."""
    a, b = lower.ir, upper.ir

    def same(u, v) -> bool:
        return all(np.array_equal(getattr(u, f), getattr(v, f)) for f in vars(u) if f != "offset")

    if (len(a.layers) != len(b.layers) or not same(a.coding, b.coding) or not same(a.output, b.output)
            or not all(type(u) is type(v) and same(u, v) for u, v in zip(a.layers, b.layers))):
        return None
    d = b.output.offset - a.output.offset
    return int(d[1] - d[0])


@dataclasses.dataclass
class Cascade:
    """A lower/upper BNN pair for ``positive`` vs the rest, in front of a float network."""

    lower: Model
    upper: Model
    positive: int
    dnn_path: str | None = None  # the DNN file (loaded lazily by ``dnn``)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    _dnn: Any = dataclasses.field(default=None, repr=False)
    _gap: int | None = dataclasses.field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _check_pair(self.lower, self.upper)
        self._gap = _offset_gap(self.lower, self.upper)

    # ------------------------------------------------------------------ answers
    def bnn_answers(self, X: np.ndarray) -> np.ndarray:
        """1 (yes: lower says yes), 0 (no: upper says no) or -1 (unknown), per input."""
        X = self.lower.check_inputs(X, dtype=None)
        if self._gap is not None:  # one network, two yes-offsets: one engine run gives both answers
            m = margin(self.lower, X)
            return np.where(m > 0, YES, np.where(m + self._gap <= 0, NO, UNKNOWN))
        out = np.where(self.lower.engine.predict(X) == YES, YES, UNKNOWN)
        rest = np.flatnonzero(out == UNKNOWN)
        if rest.size:
            out[rest[self.upper.engine.predict(X[rest]) == NO]] = NO
        return out

    def answers(self, X: np.ndarray, dnn_yes: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Final yes/no per input: the BNNs' answer, else the DNN's (``dnn_yes(X_subset)``)."""
        X = self.lower.check_inputs(X, dtype=None)
        out = self.bnn_answers(X)
        rest = np.flatnonzero(out == UNKNOWN)
        if rest.size:
            out[rest] = (dnn_yes or self.dnn_yes)(X[rest])
        return out

    @property
    def dnn(self):
        """The float network (``bnnlogic.quant.FloatNet``; needs torch for .pt files)."""
        if self._dnn is None:
            if self.dnn_path is None:
                raise UserError("this cascade has no DNN file to fall back to")
            from .nn.floatnet import load_float

            self._dnn = load_float(self.dnn_path, tuple(self.lower.ir.coding.feature_shape),
                                   float(self.meta.get("input_scale", 1.0)))
        return self._dnn

    def dnn_yes(self, X: np.ndarray) -> np.ndarray:
        """The DNN's yes/no (its argmax is the positive class) on raw inputs."""
        from .nn.floatnet import float_predict

        X = np.asarray(X).reshape((len(X),) + tuple(self.lower.ir.coding.feature_shape))
        return (float_predict(self.dnn, X) == self.positive).astype(np.int64)

    # ------------------------------------------------------------------ files
    def save(self, out: str | os.PathLike) -> None:
        """Write the folder atomically: built in a temporary sibling folder, then renamed into place."""
        out = Path(out)
        if out.exists() and not (out / "cascade.json").is_file():
            if not out.is_dir() or any(out.iterdir()):
                raise UserError(f"{out}: exists and is not a cascade folder; choose another --out")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            self.lower.save(tmp / "lower.bnn")
            self.upper.save(tmp / "upper.bnn")
            meta = dict(self.meta, format=FORMAT, version=VERSION, positive=int(self.positive),
                        lower="lower.bnn", upper="upper.bnn")
            if self.dnn_path is not None:
                name = "dnn" + Path(self.dnn_path).suffix
                shutil.copyfile(self.dnn_path, tmp / name)
                meta["dnn"] = name
            write_json(tmp / "cascade.json", meta)
            old = None
            if out.exists():
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                os.replace(out, old)
            os.replace(tmp, out)
            if old is not None:
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.dnn_path = str(out / meta["dnn"]) if "dnn" in meta else None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Cascade":
        """Read a cascade folder; a missing or foreign folder is a ``UserError``."""
        path = Path(path)
        f = path / "cascade.json"
        if not f.is_file():
            raise UserError(f"{path}: not a cascade folder (no cascade.json); build one with `bnnlogic cascade build`")
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{f}: unreadable ({exc}); rebuild the cascade") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise UserError(f"{f}: not a version-{VERSION} {FORMAT} file; rebuild the cascade")
        lower, upper = Model.load(path / meta["lower"]), Model.load(path / meta["upper"])
        dnn = str(path / meta["dnn"]) if meta.get("dnn") else None
        return cls(lower, upper, int(meta["positive"]), dnn, meta)


# ---------------------------------------------------------------------- proofs
def consistent(c: Cascade, timeout: float | None = 60.0, backend: str = "auto") -> dict[str, Any]:
    """Prove "never lower = yes while upper = no" over the whole input domain (see the docstring).

    Returns ``{"status": "consistent" | "inconsistent" | "unknown", "time_s", ...}``; an
    inconsistency carries the witness and both BNNs' replayed predictions.
    """
    from .verification import equivalent

    r = equivalent(c.lower, c.upper, backend=backend, timeout=timeout, implies=([YES], [YES]))
    out: dict[str, Any] = {"status": {"equivalent": "consistent", "different": "inconsistent"}.get(r.status, "unknown"),
                           "time_s": r.time_s, "timeout": timeout, "backend": backend}
    if r.status == "different":
        x = np.asarray(r.witness).reshape(1, -1)
        lo, up = int(c.lower.predict(x)[0]), int(c.upper.predict(x)[0])
        if (lo, up) != (YES, NO):
            raise RuntimeError(f"consistency witness failed replay (lower {lo}, upper {up}); this is a bug")
        out.update({"witness": x[0].tolist(), "lower_pred": lo, "upper_pred": up})
    return out


def region_decided(c: Cascade, x: np.ndarray, eps: int, timeout: float | None = 10.0) -> str:
    """"yes" (lower says yes on the whole L-inf eps-box around x), "no" (upper says no on all
    of it), "undecided" (both have a counterexample in it) or "unknown" (time ran out)."""
    from .verification import make_region, verify_region

    undecided = True
    for model, answer in ((c.lower, YES), (c.upper, NO)):
        R = make_region(model, model.check_inputs(x)[0], eps)
        r = verify_region(model, R, [answer], answer, timeout=timeout)
        if r.status == "robust":
            return "yes" if answer == YES else "no"
        undecided &= r.status == "counterexample"
    return "undecided" if undecided else "unknown"


# ---------------------------------------------------------------------- evaluation
def _best_time(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def evaluate(c: Cascade, X: np.ndarray, y: np.ndarray, repeat: int = 3) -> dict[str, Any]:
    """Coverage, fidelity, accuracy and measured speed-up of the cascade on (X, labels y).

    coverage   fraction of inputs the BNNs decide
    fidelity   agreement of the BNNs' answers with the DNN's yes/no on those inputs
    accuracy   the cascade's final answers (DNN fallback included) vs ``y == positive``
    speedup    best-of-``repeat`` wall time of the DNN alone on X / that of the cascade
               (both BNNs' engines and the DNN on the unknown inputs); engines warmed up first
    guarantee  for a split-calibrated cascade, its ``guarantee`` plus
               ``expected_disagreements_at_most`` (``expected_disagreements`` on X)
    """
    X = c.lower.check_inputs(X, dtype=None)
    truth = (np.asarray(y) == c.positive).astype(np.int64)
    dnn_all = c.dnn_yes(X)
    bnn = c.bnn_answers(X)
    decided = bnn != UNKNOWN
    final = np.where(decided, bnn, dnn_all)
    c.bnn_answers(X[:8])  # warm-up (engine compilation)
    t_dnn = _best_time(lambda: c.dnn_yes(X), repeat)
    t_cas = _best_time(lambda: c.answers(X), repeat)
    out: dict[str, Any] = {
        "n": int(len(X)), "positive": int(c.positive),
        "coverage": float(decided.mean()),
        "decided_yes": int((bnn == YES).sum()), "decided_no": int((bnn == NO).sum()),
        "fidelity": float((bnn[decided] == dnn_all[decided]).mean()) if decided.any() else None,
        "disagreements": int((bnn[decided] != dnn_all[decided]).sum()),
        "accuracy": float((final == truth).mean()),
        "dnn_accuracy": float((dnn_all == truth).mean()),
        "dnn_seconds": t_dnn, "cascade_seconds": t_cas, "speedup": t_dnn / t_cas if t_cas > 0 else None,
    }
    g = c.meta.get("guarantee")
    if g:
        out["guarantee"] = dict(g, expected_disagreements_at_most=expected_disagreements(g, dnn_all))
    return out
