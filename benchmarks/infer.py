"""bnnlogic's bit-packed engine vs PyTorch, same shapes, one process.

    python benchmarks/infer.py [--quick] [--json PATH] [--record]

Architectures: ``fc`` = 784-500-300-200-100-10 and ``conv`` = conv-small
(cnn:c16k4s2,c32k4s2,d100 on 1x28x28), each run three ways on Fashion-MNIST test images:

* ``torch f32``  nn.Linear/Conv2d + BatchNorm + Hardtanh, float32 (eval mode, inference_mode);
* ``torch ±1``   how a Larq/Brevitas-style user runs a BNN: float32 tensors, weights
                 binarised with sign() on every forward, sign activations;
* ``bnnlogic``   the IR on ``bnnlogic.infer.Engine`` (bit-packed, numba).

Weights are random (speed does not depend on their values; binary IR weights, thresholds
around the middle of each neuron's range, so about half the neurons fire).  Torch uses
``os.cpu_count()`` threads; numba its default (the same).  Throughput at batch 64 and 4096 is
the best of a few timed repetitions; batch-1 latency is the median of many single calls.
The three engines take turns, round after round (``ROUNDS``), and each keeps its best round:
on a shared host, whose speed drifts by up to 2x between phases of tens of seconds, all
three then get the same chance of a fast phase (timing one after the other did not).
Also times ``bnnlogic eval --no-agreement`` on the full Fashion-MNIST test split for the fc
net (inference seconds after compilation, as the command reports them), and the cold numba
compile time (fresh cache dir, in a subprocess).  Writes ``benchmarks/out/infer.md``; with
``--record`` a record ``infer`` (``infer-quick`` for ``--quick``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json, write_text  # noqa: E402
from bnnlogic.infer import Engine  # noqa: E402
from bnnlogic.ir import IR, Conv, Dense, InputCoding, Output  # noqa: E402
from bnnlogic.model import Model  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
ARCHS = {"fc": "784-500-300-200-100-10", "conv": "cnn:c16k4s2,c32k4s2,d100 (conv-small)"}


# ---------------------------------------------------------------- the networks
def random_ir(arch: str, seed: int = 0) -> IR:
    """Binary weights, threshold 128 on pixels, k near the middle of each neuron's range."""
    rng = np.random.default_rng(seed)
    image = arch == "conv"
    coding = InputCoding((1, 28, 28), 0, 255, np.full((1, 784), 128, np.int64))
    shape, layers = coding.bit_shape, []

    def k_of(A):
        return rng.integers(-2, 3, size=len(A)).astype(np.int64)

    if image:
        for c_out in (16, 32):
            A = rng.choice(np.array([-1, 1], np.int8), size=(c_out, shape[0], 4, 4))
            layers.append(Conv(A, k_of(A), 2))
            shape = layers[-1].out_shape(shape)
    for h in ((100,) if image else (500, 300, 200, 100)):
        A = rng.choice(np.array([-1, 1], np.int8), size=(h, int(np.prod(shape))))
        layers.append(Dense(A, k_of(A)))
        shape = (h,)
    out = Output(rng.choice(np.array([-1, 1], np.int8), size=(10, shape[0])), 1, np.zeros(10, np.int64))
    ir = IR(coding, tuple(layers), out)
    ir.validate()
    return ir


class BinLinear(nn.Linear):
    """Larq/Brevitas style: latent float weights, sign() of weights and inputs on every call."""

    def forward(self, x):
        return nn.functional.linear(torch.sign(x), torch.sign(self.weight), self.bias)


class BinConv2d(nn.Conv2d):
    def forward(self, x):
        return nn.functional.conv2d(torch.sign(x), torch.sign(self.weight), self.bias, self.stride)


class Sign(nn.Module):
    def forward(self, x):
        return torch.sign(x)


def torch_net(arch: str, binary: bool) -> nn.Module:
    """The same shapes in torch: float32 with hardtanh, or ±1 weights with sign activations."""
    lin, conv = (BinLinear, BinConv2d) if binary else (nn.Linear, nn.Conv2d)
    act = Sign if binary else nn.Hardtanh
    mods: list[nn.Module] = []
    if arch == "conv":
        mods += [nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 4, 2), nn.BatchNorm2d(16), act(),
                 conv(16, 32, 4, 2), nn.BatchNorm2d(32), act(), nn.Flatten()]
        dims = [800, 100]
    else:
        dims = [784, 500, 300, 200, 100]
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        first = i == 0 and arch == "fc"  # a BNN's first layer sees the real-valued input
        mods += [(nn.Linear if first else lin)(a, b), nn.BatchNorm1d(b), act()]
    mods.append(lin(dims[-1], 10))
    return nn.Sequential(*mods).eval()


# ---------------------------------------------------------------- timing
ROUNDS = 5  # turns each engine gets (2 with --quick)


def mean_time(f, min_seconds: float) -> float:
    """Mean time of f() in a loop of >= min_seconds."""
    n, t0 = 0, time.perf_counter()
    while True:
        f()
        n += 1
        t = time.perf_counter() - t0
        if t >= min_seconds:
            return t / n


def in_turns(fs: dict, measure, rounds: int) -> dict:
    """min over ``rounds`` rounds of ``measure(f)`` for every f in ``fs``, the fs taking turns in each round."""
    for f in fs.values():
        f()
    best = {name: float("inf") for name in fs}
    for _ in range(rounds):
        for name, f in fs.items():
            best[name] = min(best[name], measure(f))
    return best


def median_latency(f, n_calls: int, max_seconds: float = 3.0) -> float:
    """Median of up to ``n_calls`` timed single calls (at least 20; stops after ``max_seconds``)."""
    for _ in range(5):
        f()
    ts: list[float] = []
    while len(ts) < n_calls and (len(ts) < 20 or sum(ts) < max_seconds):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def cold_compile_seconds() -> float:
    """Numba compile time of the engine with an empty cache (subprocess, fresh NUMBA_CACHE_DIR)."""
    code = ("import sys; sys.path.insert(0, %r); sys.path.insert(0, %r); import infer as b; "
            "from bnnlogic.infer import Engine; print(Engine(b.random_ir('conv')).warm_up())"
            % (str(ROOT), str(Path(__file__).parent)))
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def eval_cli(ir: IR) -> dict:
    """`bnnlogic eval --no-agreement` on the Fashion-MNIST test split: reported inference seconds and wall."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fc.bnn")
        Model(ir, {"arch": "mlp:500,300,200,100", "dataset": "fashion-mnist"}).save(path)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "bnnlogic", "eval", path, "--no-agreement", "--json"],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
    res = json.loads(out.stdout)
    return {"n": res["n"], "inference_seconds": res["seconds"], "command_wall_seconds": wall}


# ---------------------------------------------------------------- main
def bench_arch(arch: str, X: np.ndarray, batches: tuple[int, ...], min_seconds: float, n_calls: int,
               rounds: int) -> dict:
    ir = random_ir(arch)
    engine = Engine(ir)
    warm = engine.warm_up()
    Xb = {b: np.ascontiguousarray(np.resize(X, (b, X.shape[1]))) for b in batches}
    assert np.array_equal(engine.scores(Xb[batches[-1]][:256]), ir.scores(Xb[batches[-1]][:256]))
    nets = {"torch f32": torch_net(arch, False), "torch ±1": torch_net(arch, True)}
    res: dict = {"arch": ARCHS[arch], "warm_up_seconds": warm, "runs": {name: {} for name in [*nets, "bnnlogic"]}}

    def call(name: str, b: int):
        if name == "bnnlogic":
            return lambda x=Xb[b]: engine.scores(x)
        xt, net = torch.tensor(Xb[b], dtype=torch.float32), nets[name]

        def f(xt=xt, net=net):
            with torch.inference_mode():
                net(xt)
        return f

    for b in batches:
        fs = {name: call(name, b) for name in res["runs"]}
        if b == 1:
            lat = in_turns(fs, lambda f: median_latency(f, n_calls // rounds, 3.0 / rounds), rounds)
            for name, t in lat.items():
                res["runs"][name].update(latency_b1_us=t * 1e6, throughput_b1=1 / t)
        else:
            for name, t in in_turns(fs, lambda f: mean_time(f, min_seconds / rounds), rounds).items():
                res["runs"][name][f"throughput_b{b}"] = b / t
    res["runs"]["bnnlogic"]["weight_bytes"] = engine.program.weight_bytes
    for name, net in nets.items():
        res["runs"][name]["weight_bytes"] = sum(t.numel() * 4 for t in list(net.parameters()) + list(net.buffers())
                                                if t.dtype == torch.float32)
    for name, r in res["runs"].items():
        print(f"  {arch} {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()), flush=True)
    # torch's batch-1 latency with one thread, for reference (threads hurt tiny batches)
    torch.set_num_threads(1)
    xt1 = torch.tensor(Xb[1], dtype=torch.float32)
    with torch.inference_mode():
        res["torch_f32_1thread_latency_b1_us"] = median_latency(lambda: nets["torch f32"](xt1), n_calls) * 1e6
    torch.set_num_threads(os.cpu_count())
    f32, ours = res["runs"]["torch f32"], res["runs"]["bnnlogic"]
    big = max(batches)
    res["speedup_b4096"] = ours[f"throughput_b{big}"] / f32[f"throughput_b{big}"]
    res["speedup_b1"] = f32["latency_b1_us"] / ours["latency_b1_us"]
    res["memory_ratio"] = f32["weight_bytes"] / ours["weight_bytes"]
    return res


def layer_costs(X: np.ndarray) -> list[dict]:
    """Core time per image of the fc net cut after 0..4 hidden layers (one thread, batch 4096,
    best of 5 by thread CPU time): where the engine's time goes, layer by layer."""
    import numba

    full, rows = random_ir("fc"), []
    prev = 0.0
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for n in range(len(full.layers) + 1):
            out = full.output if n == len(full.layers) else Output(
                np.ones((10, full.layers[n - 1].A.shape[0] if n else full.coding.n_bits), np.int8), 1,
                np.zeros(10, np.int64))
            engine = Engine(IR(full.coding, full.layers[:n], out))
            engine.scores(X)
            best = float("inf")
            for _ in range(5):
                t0 = time.thread_time()
                engine.scores(X)
                best = min(best, time.thread_time() - t0)
            ns = best / len(X) * 1e9
            rows.append({"hidden_layers": n, "ns_per_image": ns, "added_ns": ns - prev})
            prev = ns
    finally:
        numba.set_num_threads(threads)
    return rows


def table(results: dict, batches: tuple[int, ...]) -> str:
    big = max(batches)
    head = (["| net | engine |"] + [f" img/s b{b} |" for b in batches if b > 1]
            + [" latency b1 (µs) | weights (bytes) | vs f32: b%d | b1 latency | memory |" % big])
    lines = ["".join(head), "|---|---|" + "---:|" * (len(batches) - 1 + 5)]
    for arch, res in results.items():
        f32 = res["runs"]["torch f32"]
        for name, r in res["runs"].items():
            cells = [f"{r[f'throughput_b{b}']:,.0f}" for b in batches if b > 1]
            cells += [f"{r['latency_b1_us']:,.1f}", f"{r['weight_bytes']:,}",
                      f"{r[f'throughput_b{big}'] / f32[f'throughput_b{big}']:.1f}x",
                      f"{f32['latency_b1_us'] / r['latency_b1_us']:.1f}x",
                      f"{f32['weight_bytes'] / r['weight_bytes']:.1f}x"]
            lines.append(f"| {arch} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter timing loops, batches 1 and 4096 only, no cold compile")
    ap.add_argument("--json", help="also write the results as JSON here")
    add_record_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    batches = (1, 4096) if args.quick else (1, 64, 4096)
    min_seconds, n_calls, rounds = (0.4, 200, 2) if args.quick else (3.0, 2000, ROUNDS)
    X = load_dataset("fashion-mnist").split_arrays("test")[0].reshape(-1, 784)  # raw uint8 pixels
    load0 = os.getloadavg()[0]
    results = {arch: bench_arch(arch, X, batches, min_seconds, n_calls, rounds) for arch in ("fc", "conv")}
    extra = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
             "loadavg_1min_start": load0, "loadavg_1min_end": os.getloadavg()[0],
             "eval_fashion_test_fc": eval_cli(random_ir("fc")),
             "fc_layer_costs": layer_costs(np.ascontiguousarray(np.resize(X, (4096, X.shape[1])))),
             "cold_compile_seconds": None if args.quick else cold_compile_seconds()}
    tab = table(results, batches)
    ev = extra["eval_fashion_test_fc"]
    notes = (f"\n\n{os.cpu_count()} cores, torch threads {extra['torch_threads']}, 1-min load average "
             f"{load0:.2f} at start, {extra['loadavg_1min_end']:.2f} at end (shared machine).\n"
             f"torch f32 batch-1 latency with 1 thread: "
             + ", ".join(f"{a} {r['torch_f32_1thread_latency_b1_us']:.1f} µs" for a, r in results.items())
             + f".\n`bnnlogic eval` (fc, Fashion-MNIST test, {ev['n']} images): inference "
             f"{ev['inference_seconds']:.3f} s after compilation, whole command {ev['command_wall_seconds']:.2f} s; "
             + ("" if args.quick else f"numba compile of the engine with an empty cache "
                                      f"{extra['cold_compile_seconds']:.1f} s (cached afterwards).") + "\n")
    notes += ("fc core time per image (one thread), cut after n hidden layers: " + ", ".join(
        f"n={r['hidden_layers']} {r['ns_per_image']:.0f} ns (+{r['added_ns']:.0f})" for r in extra["fc_layer_costs"])
        + " (n=0: input compares + a 10-neuron output layer on the input bits).\n")
    print(tab + notes)
    os.makedirs(OUT, exist_ok=True)
    write_text(OUT / "infer.md", tab + notes)
    summary = {a: {k: r[k] for k in ("speedup_b4096", "speedup_b1", "memory_ratio")} | {"detail": r}
               for a, r in results.items()}
    if args.json:
        write_json(args.json, summary | {"machine": extra})
    if args.record:
        rows = [{"net": a, "engine": name, **r} for a, res in results.items() for name, r in res["runs"].items()]
        print("record:", save_record("infer-quick" if args.quick else "infer",
                                     {a: {k: r[k] for k in ("speedup_b4096", "speedup_b1", "memory_ratio")}
                                      for a, r in results.items()} | {"batches": list(batches), "extra": extra}, rows))


if __name__ == "__main__":
    main()
