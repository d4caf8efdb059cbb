"""The benchmark pages of the docs and the README's headline tables, from the records.

    python benchmarks/render.py           # docs/benchmarks/*.md, docs/benchmarks/img/*.png, README.md
    python benchmarks/render.py --check   # exit 1 if a generated page or README table is out of date

Every table is made from the newest record of a benchmark (``records.latest``) and says
which command made it, on which machine (CPU, cores, load average), when and at which git
revision; earlier records are listed as the history.  A number that has no record is not
shown: a benchmark never recorded is listed as missing with the command that records it.
Plots (matplotlib, Agg): cumulative solved-vs-time curves per verification record,
throughput and latency bars per inference record.  ``--check`` compares the markdown only
(the plots depend on the matplotlib version) and needs no matplotlib.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import RECORDS, ROOT  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks"
IMG = DOCS / "img"
README = ROOT / "README.md"
Record = dict[str, Any]


# ------------------------------------------------------------------ records
def newest(prefix: str) -> list[tuple[str, Record, list[Record]]]:
    """(name, newest record, earlier records newest first) for every benchmark named ``prefix``
    or ``prefix-*``, by name."""
    out = []
    if RECORDS.is_dir():
        for folder in sorted(RECORDS.iterdir()):
            if folder.is_dir() and (folder.name == prefix or folder.name.startswith(prefix + "-")):
                files = sorted(folder.glob("*.json"))
                if files:
                    recs = [json.loads(p.read_text()) | {"_path": p} for p in files]
                    out.append((folder.name, recs[-1], recs[-2::-1]))
    return out


def rel(path: Path) -> str:
    return str(Path(path).relative_to(ROOT))


def machine(rec: Record) -> str:
    m = rec.get("machine", {})
    load = [m.get("load_avg_1m_start"), m.get("load_avg_1m_end")]
    load_s = " / ".join(f"{v:.1f}" for v in load if v is not None)
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gb', '?')} GB, 1-min load {load_s} (start / end)"


def provenance(rec: Record, link: bool = False) -> list[str]:
    path = rel(rec["_path"])
    where = f"[`{path}`]({path})" if link else f"`{path}`"
    dirty = " (uncommitted changes)" if rec.get("git_dirty") else ""
    return [f"Command: `{rec['command']}`  ",
            f"Record: {where}, {rec['date']}, revision `{rec['git_revision'][:8]}`{dirty}  ",
            f"Machine: {machine(rec)}", ""]


def history(earlier: list[Record]) -> list[str]:
    if not earlier:
        return []
    return ["Earlier records: " + "; ".join(f"{r['date']} (`{r['git_revision'][:8]}`, `{rel(r['_path'])}`)"
                                            for r in earlier), ""]


# ------------------------------------------------------------------ formatting
def num(v: Any, digits: int = 3) -> str:
    """Integers with separators, floats with ``digits`` significant digits, None as '-'."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 10 ** digits:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


def table(head: list[str], rows: Iterable[list[Any]], align: str | None = None) -> list[str]:
    rows = list(rows)
    align = align or "l" + "r" * (len(head) - 1)
    sep = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return ["| " + " | ".join(head) + " |", sep,
            *["| " + " | ".join(c if isinstance(c, str) else num(c) for c in r) + " |" for r in rows], ""]


# ------------------------------------------------------------------ per benchmark
def verify_tables(rec: Record, full: bool = True) -> list[str]:
    s = rec["summary"]
    rows = s["rows"] if full else [r for r in s["rows"] if r["config"] in ("default", "naive")]
    out = table(["model", "config", "eps", "n", "robust", "cex", "unknown", "median s", "mean s", "median vars",
                 "median clauses"],
                [[r["model"], r["config"], r["eps"], r["n"], r["robust"], r["counterexample"], r["unknown"],
                  r["median_time_s"], r["mean_time_s"], r["median_variables"], r["median_clauses"]] for r in rows],
                "llrrrrrrrrr")
    sp = s.get("speedup_median_vs_naive_per_model") or {}
    out += [("Speed-up of the default over naive (median time over the same queries; a naive unknown counts "
             "with its timeout): " + ", ".join(f"{m} {v:.1f}x" for m, v in sp.items()) + ".  ") if sp else "",
            f"Backend disagreements (one says robust, another counterexample): {len(s.get('disagreements', []))}; "
            f"unknown at eps <= 5 with the default: {s.get('unknown_eps_le5')}.", ""]
    return out


def plot_verify(rec: Record, png: Path) -> None:
    """Cumulative fraction of queries solved (robust or counterexample) against time, one curve
    per model and config (configs ran on different numbers of queries, hence fractions)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    keys = sorted({(r["model"], r["config"]) for r in rec["rows"]}, key=lambda k: (k[0], k[1] != "default", k[1]))
    for model, config in keys:
        rs = [r for r in rec["rows"] if (r["model"], r["config"]) == (model, config)]
        t = sorted(r["time_s"] for r in rs if r["status"] != "unknown")
        if t:
            ax.step(t, [(i + 1) / len(rs) for i in range(len(t))], where="post",
                    label=f"{model} {config} ({len(t)}/{len(rs)})", lw=2.5 if config in ("default", "naive") else 1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time per query (s, log scale)")
    ax.set_ylabel("fraction of queries solved within that time")
    ax.set_title(f"{rec['benchmark']}: solved vs time ({rec['date'][:10]})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save(fig, png)


def infer_tables(rec: Record) -> list[str]:
    s, rows = rec["summary"], rec["rows"]
    big = max(s["batches"])
    f32 = {r["net"]: r for r in rows if r["engine"] == "torch f32"}
    out = table(["net", "engine", f"img/s batch {big}", "latency batch 1 (µs)", "weights (bytes)",
                 f"vs torch f32: batch {big}", "batch-1 latency", "memory"],
                [[r["net"], r["engine"], r[f"throughput_b{big}"], r["latency_b1_us"], r["weight_bytes"],
                  f"{r[f'throughput_b{big}'] / f32[r['net']][f'throughput_b{big}']:.1f}x",
                  f"{f32[r['net']]['latency_b1_us'] / r['latency_b1_us']:.1f}x",
                  f"{f32[r['net']]['weight_bytes'] / r['weight_bytes']:.1f}x"] for r in rows], "llrrrrrr")
    ev = s.get("extra", {}).get("eval_fashion_test_fc")
    if ev:
        out += [f"`bnnlogic eval` of the fc net on the Fashion-MNIST test split ({num(ev['n'])} images): "
                f"{ev['inference_seconds']:.3f} s of inference, {ev['command_wall_seconds']:.2f} s for the whole "
                "command.", ""]
    return out


def plot_infer(rec: Record, png: Path) -> None:
    plt = _pyplot()
    big = max(rec["summary"]["batches"])
    nets = sorted({r["net"] for r in rec["rows"]})
    engines = list(dict.fromkeys(r["engine"] for r in rec["rows"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    width = 0.8 / len(engines)
    for k, (key, title) in enumerate([(f"throughput_b{big}", f"images/s at batch {big}"),
                                      ("latency_b1_us", "latency at batch 1 (µs, lower is better)")]):
        ax = axes[k]
        for j, e in enumerate(engines):
            vals = [next(r[key] for r in rec["rows"] if r["net"] == n and r["engine"] == e) for n in nets]
            ax.bar([i + j * width for i in range(len(nets))], vals, width, label=e)
        ax.set_xticks([i + width * (len(engines) - 1) / 2 for i in range(len(nets))], nets)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{rec['benchmark']} ({rec['date'][:10]})", fontsize=9)
    _save(fig, png)


def models_tables(rec: Record) -> list[str]:
    return table(["model", "data", "arch", "epochs", "test accuracy", "n", "IR agreement", "s/epoch"],
                 [[r["model"], r["data"], r["arch"], r["epochs"], f"{r['accuracy']:.4f}", r["n"],
                   f"{r['ir_agreement']:.4f}", r["seconds_per_epoch"]] for r in rec["rows"]], "lllrrrrr")


def presets_tables(rec: Record) -> list[str]:
    s = rec["summary"]
    e = s["eps"]
    out = [f"{s['data']}, `{s['arch']}`, {s['epochs']} epochs; StableSign eps {e} (the data's default); clauses: "
           f"median CNF (totalizer) of the eps-{e} robustness query over 10 test inputs.", ""]

    def cut(r, k):
        v = r.get("vs_plain")
        return "-" if v is None else (f"{v[k]:.1f}x" if k != "accuracy_points" else f"{v[k]:+.2f}")
    out += table(["preset", "accuracy", "non-zero", "clauses", f"stable @{e}", f"stable @{2 * e}",
                  "coefficients cut", "clauses cut", "accuracy points", "targets met"],
                 [[r["preset"], f"{r['accuracy']:.4f}", r["nonzero"], r["clauses"],
                   f"{100 * r['stable_fraction'][str(e)]:.1f}%", f"{100 * r['stable_fraction'][str(2 * e)]:.1f}%",
                   cut(r, "coefficients_cut"), cut(r, "clauses_cut"), cut(r, "accuracy_points"),
                   "-" if "vs_plain" not in r else ("yes" if r["vs_plain"]["meets_targets"] else "no")]
                  for r in rec["rows"]], "lrrrrrrrrl")
    out += ["Targets against plain: >= 10x fewer coefficients, >= 30x fewer clauses, accuracy within 1 point.", ""]
    return out


def friendly_tables(rec: Record) -> list[str]:
    eps = [str(e) for e in rec["summary"]["eps"]]
    rows = rec["rows"]
    e0, e1 = (list(rows[0]["stable_fraction"]) + ["?", "?"])[:2] if rows else ("?", "?")
    return table(["model", "non-zero", "accuracy", f"stable @{e0}", f"stable @{e1}", "vars", "clauses",
                  *[f"eps {e}: solved / median s / unknown" for e in eps]],
                 [[r["model"], r["nonzero"], f"{r['accuracy']:.4f}",
                   *[f"{100 * v:.1f}%" for v in r["stable_fraction"].values()], r["variables"], r["clauses"],
                   *[f"{100 * r['verify'][e]['solved']:.0f}% / {num(r['verify'][e]['median_time_s'])} / "
                     f"{r['verify'][e]['unknown']}" for e in eps]] for r in rows],
                 "lrrrrrr" + "l" * len(eps)) + [
        f"First {rec['summary']['images']} test inputs, {rec['summary']['timeout']:g} s per query, backend auto.", ""]


def explain_tables(rec: Record) -> list[str]:
    s, out = rec["summary"], []
    eps = "the whole domain" if s.get("eps") is None else f"the L-inf box eps={s['eps']}"
    out += [f"Robust explanations over {eps}, first {s['images']} test inputs per model.", ""]
    rows = []
    for model, pm in s.get("per_model", {}).items():
        for algo, a in pm["algorithms"].items():
            # every image, the unexplained ones as beyond the budget
            every = [math.inf if "error" in r[algo] else r[algo].get("time_s")
                     for r in rec.get("rows", []) if r["model"] == model and algo in r]
            med = statistics.median(every) if every and None not in every else None
            rows.append([model, algo, f"{a['explained']}/{a['images']}", a["size_median"], a["size_max"],
                         a["time_median_s"], "beyond the budget" if med == math.inf else med, a["time_max_s"],
                         a["verify_median_s"], f"{a['verified']}/{a['images']}"])
    head = ["model", "algorithm", "explained", "size median", "size max", "time median, explained (s)",
            "time median, all (s)", "time max (s)", "verify median (s)", "verified"]
    if all(a["explained"] == a["images"] for pm in s.get("per_model", {}).values() for a in pm["algorithms"].values()):
        head, rows = head[:6] + head[7:], [r[:6] + r[7:] for r in rows]  # the two medians are the same
    out += table(head, rows, "ll" + "r" * (len(head) - 2))
    counts = rec.get("counting") or []
    if counts:
        methods = [m for m in ("enumerate", "ganak", "approx", "bdd") if any(m in r for r in counts)]
        rows = []
        for e in sorted({r["eps"] for r in counts}):
            ce = [r for r in counts if r["eps"] == e]
            for m in methods:
                t = [r[m]["time_s"] for r in ce if m in r]
                rows.append([m, e, len(t), statistics.median(t), max(t),
                             sum(1 for r in ce if r.get("fraction", 0) > 0)])
        out += ["Counting the raw inputs of each box that the net puts in another class than x's:", ""]
        out += table(["method", "eps", "boxes", "time median (s)", "time max (s)", "boxes with such inputs"], rows)
        agree = [r.get("exact_agree") for r in counts if r.get("exact_agree") is not None]
        within = [r.get("approx_within") for r in counts if r.get("approx_within") is not None]
        out += [f"Exact methods agree on {sum(agree)}/{len(agree)} boxes; ApproxMC within its tolerance on "
                f"{sum(within)}/{len(within)}.", ""]
    comp = rec.get("compile") or []
    if comp:
        out += ["OBDD compilation over the whole domain of random nets (12 features 0..15, 3 thresholds, "
                "one hidden layer):", ""]
        out += table(["hidden neurons", "variables", "nodes", "compile (s)"],
                     [[c["neurons"], c.get("variables"), c.get("nodes", "too large"),
                       c.get("compile_s") if c.get("feasible", True) else "-"] for c in comp])
    return out


def dnn2bnn_tables(rec: Record) -> list[str]:
    out = []
    for net in ("mlp", "cnn"):
        info = rec["summary"].get(net)
        if not info:
            continue
        rows = [r for r in rec["rows"] if r["net"] == net]
        out += [f"**{net.upper()}** `{info['arch']}`, {info['epochs']} epochs: float accuracy "
                f"{info['dnn_accuracy']:.4f} on {num(rec['summary']['test_n'])} test inputs.", ""]
        dist = [r for r in rows if r["part"] == "distill"]
        if dist:
            out += table(["distilled BNN", "coding", "layers initialised", "epochs", "BNN accuracy", "DNN accuracy",
                          "fidelity"],
                         [[r["bnn_arch"], r["coding"], r["init_layers"], r["epochs"], _f4(r["accuracy"]),
                           _f4(r["dnn_accuracy"]), _f4(r["fidelity"])] for r in dist], "llrrrrr")
        ex = [r for r in rows if r["part"] == "exact"]
        if ex:
            out += table(["K bits", "K-bit accuracy", "K-bit vs DNN", "IR neurons", "IR weights stored",
                          "IR vs K-bit", "engine s / test split"],
                         [[r["bits"], _f4(r["quant_accuracy"]), _f4(r["quant_vs_dnn"]), r.get("neurons"),
                           r.get("stored"), _f4(r.get("ir_vs_quant")) if r["compiled"] else "not built (too large)",
                           r.get("engine_seconds")] for r in ex])
        cas = [r for r in rows if r["part"] == "cascade"]
        if cas:
            out += table(["cascade: positive class", "BNN", "coverage", "disagreements", "expected at most",
                          "consistent", "speed-up"],
                         [[f"{r['positive']}" + ("" if r["positive_name"] == str(r["positive"]) else f" {r['positive_name']}"), f"{r['ensemble']} x {r['arch']}, {r['coding']}, "
                           f"{r['epochs']} ep", _f4(r["coverage"]), r["disagreements"],
                           r.get("guarantee", {}).get("expected_disagreements_at_most"), r["consistent"], f"{r['speedup']:.2f}x"]
                          for r in cas], "llrrrlr")
    return out


def cascade_tables(rec: Record) -> list[str]:
    s = rec["summary"]
    rows = [r for r in rec["rows"] if r["study"] == "split"]
    out = [f"{s['data']}, positive class {s['positive']}, `{s['arch']}`, `{s['coding']}`, {s['epochs']} epochs, "
           f"{s['ensemble']} BNN(s) summed; split calibration per seed.", ""]
    out += table(["seed", "test coverage", "decided yes / no", "false yes", "false no", "expected disagreements at most"],
                 [[r["seed"], _f4(r["coverage"]), f"{r['decided_yes']} / {r['decided_no']}", r["false_yes"],
                   r["false_no"], r["expected_disagreements_at_most"]] for r in rows])
    return out


def _f4(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def explain_headline(rec: Record) -> list[str]:
    """The explanation table alone, and the counting methods' medians in one line."""
    out = explain_tables(dict(rec, counting=[], compile=[]))
    counts = rec.get("counting") or []
    meds = {m: statistics.median(r[m]["time_s"] for r in counts if m in r)
            for m in ("enumerate", "ganak", "approx") if any(m in r for r in counts)}
    if meds:
        out += ["Counting the misclassified inputs of the same boxes (median s per box): "
                + ", ".join(f"{m} {num(v)}" for m, v in meds.items()) + ".", ""]
    return out


def dnn2bnn_headline(rec: Record) -> list[str]:
    """Exact K-bit compilation of each float network in one table; distillation in one line."""
    rows = []
    for net in ("mlp", "cnn"):
        info = rec["summary"].get(net)
        for r in (x for x in rec["rows"] if x["net"] == net and x["part"] == "exact"):
            rows.append([f"{net} `{info['arch']}`", _f4(info["dnn_accuracy"]), r["bits"], _f4(r["quant_accuracy"]),
                         _f4(r["quant_vs_dnn"]), _f4(r.get("ir_vs_quant")) if r["compiled"] else "not built",
                         r.get("neurons")])
    out = table(["float net", "float accuracy", "K bits", "K-bit accuracy", "K-bit vs float", "IR vs K-bit",
                 "IR neurons"], rows, "lrrrrrr")
    dist = [r for r in rec["rows"] if r["part"] == "distill"]
    if dist:
        best = max(dist, key=lambda r: r["fidelity"])
        out += [f"Distilled into a BNN (`{best['bnn_arch']}`, {best['epochs']} epochs): accuracy "
                f"{_f4(best['accuracy'])}, fidelity to the float net {_f4(best['fidelity'])}.", ""]
    return out


def hard_tables(rec: Record) -> list[str]:
    """Per (model, config, eps) verdict counts and times; radius and memory summaries."""
    s = rec["summary"]
    out = table(["model", "config", "eps", "n", "robust", "cex", "unknown", "median s", "mean s", "max overrun s"],
                [[r["model"], r["config"], r["eps"], r["n"], r["robust"], r["counterexample"], r["unknown"],
                  r["median_time_s"], r["mean_time_s"], r["max_overrun_s"]] for r in s["rows"]], "llrrrrrrrr") \
        if s["rows"] else []
    rad = s.get("radius") or {}
    if rad:
        out += table(["model", "images", "both sides proven", "with a counterexample side", "median s",
                      "median decisions"],
                     [[m, v["images"], v["complete"], v.get("counterexample_side", "-"), v["median_s"],
                       v["decisions_median"]] for m, v in rad.items()], "lrrrrr")
    if s.get("ladder"):
        out += ["The radius search against the decision ladder by hand (eps = 1, 2, ... one `verify_region` each "
                "until the first counterexample or unknown) on the same images: *as tight* counts images where "
                "the search's bracket is at least as tight as the ladder's, *no slower* those of them where it "
                "also took at most the ladder's time, *ladder tighter, longer* the other images where the "
                "ladder also took longer than the search (each of its steps has the whole --timeout, the "
                "search has it once), *most s beyond the ladder* the largest excess of the search's time over "
                "the ladder's on one image.", ""]
        out += table(["model", "images", "ladder complete", "search complete", "as tight", "as tight, no slower",
                      "ladder tighter, longer", "most s beyond the ladder", "ladder median s", "search median s"],
                     [[m, v["images"], v["ladder_complete"], v["search_complete"], v["as_tight"],
                       v["as_tight_and_no_slower"], v.get("tighter_ladder_took_longer", "-"),
                       v.get("max_excess_s", "-"), v["ladder_median_s"], v["search_median_s"]]
                      for m, v in s["ladder"].items()], "lrrrrrrrrr")
    if s.get("memory"):
        out += table(["model", "images", "peak RSS MB, largest process (`--jobs 1` batch, eps 5)",
                      "peak PSS MB, all its processes"],
                     [[m["model"], m.get("images", "-"), m["peak_rss_mb"], m.get("peak_tree_pss_mb", "-")]
                      for m in s["memory"]], "lrrr")
    out += [f"Disagreements between configs (one robust, another a counterexample): {len(s.get('disagreements', []))}.",
            ""]
    return out


def plot_hard(rec: Record, png: Path) -> None:
    """Queries decided against time, one panel per model, one curve per config."""
    plt = _pyplot()
    models = sorted({r["model"] for r in rec["rows"]})
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        for cfg in sorted({r["config"] for r in rec["rows"] if r["model"] == m}):
            rs = [r for r in rec["rows"] if r["model"] == m and r["config"] == cfg]
            t = sorted(r["time_s"] for r in rs if r["status"] != "unknown")
            if t:
                ax.step(t, [(i + 1) / len(rs) for i in range(len(t))], where="post", label=f"{cfg} ({len(t)}/{len(rs)})")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("seconds per query (log)")
        ax.set_ylabel("fraction decided")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, png)


def hard_headline(rec: Record) -> list[str]:
    """The README's table: the default portfolio's verdicts on the ordinary nets of ``rec``, and
    beside them the one-core schedule's unknowns and mean on the same queries.  Each model's
    rows of each config come from the newest ``hard*`` record that ran that model and config on
    the same images and eps (``_newest_runs``: a net or a config re-run alone at a later
    revision replaces only its own rows); under the table, the record behind each."""
    rows = [r for r in rec["summary"]["rows"] if r["config"] == "default"]
    timeout = rec["summary"].get("settings", {}).get("timeout")
    found = _hard_records()
    runs = {(m, cfg): _newest_runs(found, m, cfg, {(r["eps"], r["n"]) for r in rows if r["model"] == m}, timeout)
            for m in dict.fromkeys(r["model"] for r in rows) for cfg in ("default", "one-core")}
    pick = {key: {r["eps"]: r for r in src["summary"]["rows"] if (r["model"], r["config"]) == key}
            for key, src in runs.items() if src is not None}
    head = ["model", "eps", "n", "robust", "cex", "unknown", "median s", "mean s"]
    keys = ["model", "eps", "n", "robust", "counterexample", "unknown", "median_time_s", "mean_time_s"]
    one_core = any(cfg == "one-core" for _, cfg in pick)
    cells = []
    for r in rows:
        d = pick[(r["model"], "default")][r["eps"]]
        o = pick.get((r["model"], "one-core"), {}).get(r["eps"])
        cells.append([d[k] for k in keys] + ([o["unknown"], o["mean_time_s"]] if o else ["-", "-"]) * one_core)
    out = table(head + ["one core: unknown", "one core: mean s"] * one_core, cells)
    by_record: dict[Path, tuple[Record, list[str]]] = {}
    for (m, cfg), src in runs.items():
        if src is not None:
            by_record.setdefault(src["_path"], (src, []))[1].append(f"{m} {cfg}")
    for path, (src, what) in by_record.items():
        out.append(f"- {', '.join(what)}: `{src['command']}`, record [`{rel(path)}`]({rel(path)}), "
                   f"{src['date']}, revision `{src['git_revision'][:8]}`, {machine(src)}")
    return out + [""]


def _hard_records() -> list[Record]:
    """Every record under ``benchmarks/records/hard*/``."""
    return [json.loads(path.read_text()) | {"_path": path}
            for folder in sorted(RECORDS.glob("hard*")) for path in sorted(folder.glob("*.json"))]


def _newest_runs(records: list[Record], model: str, config: str, queries: set[tuple[int, int]],
                 timeout: float | None) -> Record | None:
    """The newest of ``records`` run with the time limit ``timeout`` whose summary has a row of
    ``model`` and ``config`` for every (eps, n) of ``queries``."""
    best = None
    for r in records:
        have = {(x["eps"], x["n"]) for x in r["summary"].get("rows", [])
                if x["model"] == model and x["config"] == config}
        same = r["summary"].get("settings", {}).get("timeout") == timeout
        if same and queries <= have and (best is None or r["date"] > best["date"]):
            best = r
    return best


def tune_tables(rec: Record) -> list[str]:
    """Candidate schedules simulated on the engines' measured solve times."""
    s = rec["summary"]
    out = table(["schedule", "cores", "queries", "unknown", "mean s"],
                [[r["schedule"], r["cores"], r["queries"], r["unknown"], r["mean_s"]] for r in rec["rows"]], "lrrrr")
    if "disagreements" in s:
        out += [f"Deadline {num(s['deadline_s'])} s.  Disagreements (one robust, another a counterexample) between "
                f"every engine and config run on these models: {len(s['disagreements'])} over "
                f"{s['queries_compared']} queries ({s['runs_compared']} runs).", ""]
    return out


def bounds_tables(rec: Record) -> list[str]:
    """Branch-and-bound nodes proven safe by interval bounds and by a linear relaxation."""
    rows = [{"model": k.split("/")[0], "eps": k.split("/")[1], "depth": k.split("/")[2], **v}
            for k, v in rec["summary"].items()]
    return dict_table(rows, [("model", "model"), ("eps", "eps"), ("depth", "depth"), ("queries", "queries"),
                             ("nodes", "nodes"), ("safe_interval", "safe: interval"), ("safe_linear", "safe: linear"),
                             ("linear_ms_per_node", "linear ms/node")], "lrrrrrrr")


def cubes_tables(rec: Record) -> list[str]:
    """Each engine alone on branch and bound's sub-boxes of boxes too big for it."""
    s = rec["summary"]
    cols = [("model", "model"), ("eps", "eps"), ("queries", "queries"), ("parts", "parts"),
            ("part_log2_cells", "part log2 cells"), ("fixed", "fixed neurons")]
    cols += [(f"{e}_{k}", f"{e}: {h}") for e in s["engines"] for k, h in (("decided", "decided"), ("median_s", "median s"))]
    return dict_table(s["rows"], cols, "lr" + "r" * (len(cols) - 2)) + [
        f"Timeout {num(s['settings']['timeout'])} s per engine and part (an undecided part counts at it in the "
        f"median).  Disagreements (one engine robust, another a counterexample on a part): {s['disagreements']}.", ""]


def cms_tables(rec: Record) -> list[str]:
    """CryptoMiniSat's native BNN constraints on queries with a known verdict."""
    s = rec["summary"]
    libs = list(s["libraries"])
    rows = [{**r, "known": f"{r['known']} ({r['known_from']})",
             **{f"{k}_v": r[k]["status"] + (f", with x fixed: {r[k]['with_x_fixed']}" if "with_x_fixed" in r[k] else "")
                for k in libs},
             **{f"{k}_s": r[k]["time_s"] for k in libs}} for r in rec["rows"]]
    cols = [("index", "image"), ("eps", "eps"), ("known", "known verdict (from)")]
    cols += [c for k in libs for c in ((f"{k}_v", f"{k} {s['libraries'][k]}"), (f"{k}_s", "s"))]
    sound = "; ".join(f"{k} {s['libraries'][k]}: {s[k]['unsound']} unsound, {s[k]['crashed']} crashed, "
                      f"{s[k]['unsat']} unsat, {s[k]['sat']} sat, {s[k]['unknown']} unknown" for k in libs)
    return dict_table(rows, cols, "rrl" + "lr" * len(libs)) + [
        f"{s['model']}, {num(s['timeout'])} s per library and query.  *Unsound*: `unsat` where a replayed "
        f"counterexample is known.  {sound}.  So CryptoMiniSat is not an engine of the portfolio.", ""]


def tail_tables(rec: Record) -> list[str]:
    """The default's open queries again, with the estimate their ``unknown`` printed and the
    verdict of a longer budget."""
    s = rec["summary"]
    rows = [{**r, "log2_cells": round(r["log2_cells"]), "by": r["backend"] if r["status"] != "unknown" else "-",
             "from": "pace" if r.get("bab_decided") else "price"} for r in rec["rows"]]
    out = dict_table(rows, [("model", "model"), ("index", "image"), ("eps", "eps"), ("log2_cells", "log2 cells"),
                            ("estimate_s", f"estimate at {num(s['timeout'])} s (s)"), ("from", "estimate from"),
                            ("status", "verdict"), ("time_s", "time (s)"), ("by", "by")], "lrrrrllrl")
    ratios = "; ".join(f"{m['model']} {', '.join(map(str, m['time_over_estimate'])) or '-'}" for m in s["models"])
    return out + [f"Each query first ran at the default budget of {num(s['timeout'])} s (its `unknown` printed the "
                  f"estimate: what branch and bound alone would need, `Race.bab_estimate`, from the pace it kept "
                  f"in the race or, where it did not run, its price per cell), then with "
                  f"`--timeout {num(s['long'])}`.  Time over estimate, per decided query: {ratios}.", ""]


def lns_tables(rec: Record) -> list[str]:
    """LNS against the attack alone on the default's open queries."""
    s = rec["summary"]
    rows = [{**r, "lns_only": ", ".join(map(str, r["lns_only"])) or "-"} for r in s["rows"]]
    a = s["settings"]
    return dict_table(rows, [("model", "model"), ("eps", "eps"), ("queries", "open queries"),
                             ("attack_hits", "attack: hits"), ("lns_hits", "LNS: hits"),
                             ("lns_only", "images LNS alone hit")], "lrrrrl") + [
        f"{num(a['timeout'])} s per method and query, one thread; neighbourhoods of 2^{num(a['bits'])} threshold "
        f"cells, branch and bound at most {num(a['sub_timeout'])} s on each.", ""]


def dict_table(rows: Iterable[Record], cols: list[tuple[str, str]], align: str | None = None) -> list[str]:
    """A table of ``rows`` (dicts) with columns ``(key, header)``; a missing key is '-'."""
    return table([h for _, h in cols], [[r.get(k) if not isinstance(r.get(k), bool) else str(r.get(k))
                                         for k, _ in cols] for r in rows], align)


def attack_tables(rec: Record) -> list[str]:
    return dict_table(rec["summary"]["rows"],
                      [("model", "model"), ("eps", "eps"), ("attack", "attack"), ("queries", "queries"),
                       ("known_counterexamples", "known cex"), ("hits", "hits"),
                       ("hits_on_solver_cex", "hits on solver cex"), ("hit_rate_solver", "rate (solver cex)"),
                       ("median_time_hit_s", "median s (hit)"), ("median_changed", "median features changed")],
                      "lrlrrrrrrr")


def imports_tables(rec: Record) -> list[str]:
    return dict_table(rec["rows"], [("source", "source"), ("data", "data"), ("n", "n"), ("agreement", "agreement"),
                                    ("ambiguous_neurons", "ambiguous neurons"), ("read_s", "read s"),
                                    ("fold_s", "fold s"), ("api_total_s", "API total s"),
                                    ("cli_wall_s", "CLI wall s")], "llrrrrrrr")


def interop_tables(rec: Record) -> list[str]:
    s = rec["summary"]
    return dict_table(s["onnx"], [("model", "model"), ("n", "n"), ("scores_equal", "scores equal"),
                                  ("predictions_equal", "predictions equal"), ("bit_identical", "IR read back bit-identical"),
                                  ("export_s", "export s"), ("onnx_mb", "ONNX MB"), ("onnxruntime_s", "onnxruntime s"),
                                  ("engine_s", "engine s")], "lrrrlrrrr") + \
        [f"OPB (clasp) disagreements with `verify`: {s.get('opb_disagreements')}; WCNF (RC2) disagreements with "
         f"`verify --min-eps`: {s.get('wcnf_disagreements')}.", ""]


def certify_tables(rec: Record) -> list[str]:
    s = rec["summary"]
    t = s["total"]
    rows = [r | {"leaves_s": "/".join(str(r["leaves"][k]) for k in ("B", "E", "P", "split"))} for r in s["rows"]]
    return dict_table(rows, [("model", "model"), ("backend", "backend"), ("source", "verdict from"),
                             ("robust", "robust"), ("certified", "certified"), ("leaves_s", "leaves B/E/P/split"),
                             ("median_proof_bytes", "median proof bytes"), ("median_solve_s", "median solve s"),
                             ("median_prove_s", "median prove s"), ("median_check_s", "median check s"),
                             ("median_check_over_solve", "check / solve")], "lllrrlrrrrr") + \
        [f"Certified: {t['certified']} of {t['robust']} robust verdicts.", ""]


def reliability_tables(rec: Record) -> list[str]:
    o, f, k = rec["summary"]["oracle"], rec["summary"]["fuzz"], rec["summary"]["kill"]
    return table(["check", "tried", "failures"],
                 [["random queries against brute force (every backend)", o["cases"], o["disagreements"]],
                  ["fuzzed files and arguments (crashes: traceback, no error line, hang)", f["inputs"], f["crashes"]],
                  [f"batch SIGKILLed and resumed ({k['kills_hit']} kills hit a running batch): lost / duplicated / "
                   f"different lines", k["kills"], f"{k['lost']} / {k['duplicated']} / {k['differ']}"]], "lrr")


def scale_tables(rec: Record) -> list[str]:
    rows, s = rec["rows"], rec["summary"]
    out = dict_table([r for r in rows if r["table"] == "batch"],
                     [("engine", "executor"), ("workers", "workers"), ("queries", "queries"), ("wall_s", "wall s"),
                      ("queries_per_s", "queries/s"), ("speedup", "speed-up"), ("startup_s", "start-up s"),
                      ("robust", "robust"), ("counterexample", "cex"), ("unknown", "unknown")], "lrrrrrrrrr")
    out += dict_table([r for r in rows if r["table"] == "noop"],
                      [("engine", "executor"), ("workers", "workers"), ("calls", "calls"),
                       ("round_trip_ms", "round trip ms")], "lrrr")
    split = [r for r in rows if r["table"] == "split"]
    if split:
        out += dict_table(split, [("query", "hard query (index:eps)"), ("engine", "executor"), ("workers", "workers"),
                                  ("parts", "parts"), ("status", "verdict"), ("wall_s", "wall s")], "llrrlr")
    out += [f"Verdicts that differ between configurations: {s['verdict_differences']}; Ray's overhead per query: "
            f"{num(s.get('ray_overhead_ms'))} ms.", ""]
    return out


# ------------------------------------------------------------------ pages
Renderer = Callable[[Record], list[str]]
Plotter = Callable[[Record, Path], None]

#: page -> (title, intro, [(record prefix, tables, plot or None, command that records it)])
PAGES: dict[str, tuple[str, str, list[tuple[str, Renderer, Plotter | None, str]]]] = {
    "verification.md": ("Verification benchmarks",
                        "Robustness queries over the first test inputs: the naive baseline (sequential-counter CNF "
                        "of every neuron, Glucose, no bounds, no attack), bnnlogic's default (`auto` portfolio) and "
                        "each backend alone on the same queries (`benchmarks/verify.py`).",
                        [("verify", verify_tables, plot_verify,
                          "python benchmarks/verify.py --models digits-mlp --images 20 --naive-images 5 --eps 1,2,3 "
                          "--timeout 10 --solvers small --solver-images 5 --record")]),
    "hard.md": ("The hard tail: ordinary networks",
                "Robustness queries on plainly trained networks, where the solvers alone leave many queries open "
                "(`benchmarks/hard.py`): the default racing portfolio on every core, its one-core schedule, and "
                "each engine alone; the robustness radius; the peak memory of a `--jobs 1` batch.  `schedules` "
                "simulates candidate schedules on the engines' measured solve times (how `portfolio.SCHEDULES` "
                "was chosen); `bounds` and `cubes` measured two things not built: a linear relaxation in branch "
                "and bound, and the solvers on its sub-boxes (cube and conquer); `tail` gives the queries the "
                "default leaves open a longer budget; `cms` checked CryptoMiniSat's native BNN constraints (the "
                "design of EEV's solver) as an engine, and found them unsound; `lns` measured a large-neighbourhood "
                "search (branch and bound on neighbourhoods of the attack's best input) against the attack, not built.",
                [("hard", hard_tables, plot_hard,
                  "python benchmarks/hard.py --images 20 --eps 1,3,5,10,20 --configs default,one-core --one-core-images 5 --engines '' "
                  "--radius 5 --radius-timeout 60 --memory 10 --record"),
                 ("attack", attack_tables, None,
                  "python benchmarks/attack.py --models fashion-mlp-small,fashion-conv-small --images 10 --eps 3,5,20 "
                  "--record"),
                 ("bounds", bounds_tables, None, "python benchmarks/bounds.py --images 20 --eps 5 --record"),
                 ("cubes", cubes_tables, None, "python benchmarks/cubes.py --record"),
                 ("tail", tail_tables, None, "python benchmarks/tail.py --per-model 4 --long 600 --record"),
                 ("cms", cms_tables, None, "python benchmarks/cms.py --record"),
                 ("lns", lns_tables, None, "python benchmarks/lns.py --record"),
                 ("schedules", tune_tables, None,
                  "python benchmarks/hard.py --tune --models fashion-mlp-small,fashion-mlp-large-eev,"
                  "fashion-conv-small --timeout 30 --record")]),
    "interop.md": ("Interoperability and reliability benchmarks",
                   "Imports of BNNs trained elsewhere (`benchmarks/imports.py`), exports checked against "
                   "onnxruntime and independent solvers (`benchmarks/interop.py`), certificates of robust verdicts "
                   "(`benchmarks/certify.py`), the long reliability run (`benchmarks/reliability.py`) and batches "
                   "on a pool and on Ray (`benchmarks/scale.py`).",
                   [("imports", imports_tables, None, "python benchmarks/imports.py --record"),
                    ("interop", interop_tables, None, "python benchmarks/interop.py --record"),
                    ("certify", certify_tables, None, "python benchmarks/certify.py --record"),
                    ("reliability", reliability_tables, None, "python benchmarks/reliability.py --record"),
                    ("scale", scale_tables, None, "python benchmarks/scale.py --record")]),
    "inference.md": ("Inference benchmarks",
                     "The bit-packed engine against PyTorch (float32, and ±1 weights binarised on every forward) on "
                     "the same shapes with random weights, raw Fashion-MNIST test images (`benchmarks/infer.py`): "
                     "fc = 784-500-300-200-100-10, conv = conv-small.",
                     [("infer", infer_tables, plot_infer, "python benchmarks/infer.py --record")]),
    "training.md": ("Training and preset benchmarks",
                    "Accuracy of the model zoo (`benchmarks/models.py`), the verification-friendly presets "
                    "against plain training (`benchmarks/presets.py`), and presets measured by verification "
                    "(`benchmarks/friendly.py`).",
                    [("models", models_tables, None, "python benchmarks/models.py --record"),
                     ("presets", presets_tables, None,
                      "python benchmarks/presets.py --data digits --arch mlp:200,100 --epochs 20 --record"),
                     ("friendly", friendly_tables, None,
                      "python benchmarks/friendly.py --nets small --presets plain,stablesign-sparse --images 10 "
                      "--eps 1,3,5,10,15,25 --timeout 10 --record")]),
    "explanations.md": ("Explanation and counting benchmarks",
                        "Formal explanations (every one re-checked independently), model counting and OBDD "
                        "compilation (`benchmarks/explain.py`).",
                        [("explain", explain_tables, None, "python benchmarks/explain.py --quick --record")]),
    "dnn2bnn.md": ("DNN-to-BNN and cascade benchmarks",
                   "Float networks distilled into BNNs, compiled exactly at K bits, and cascades of BNNs in front "
                   "of them (`benchmarks/dnn2bnn.py`, `benchmarks/cascade_guard.py`).",
                   [("dnn2bnn", dnn2bnn_tables, None, "python benchmarks/dnn2bnn.py --quick --record"),
                    ("cascade", cascade_tables, None,
                     "python benchmarks/cascade_guard.py --dnn DNN.pt --data NAME --positive C --folds 0 --splits 5 "
                     "--record")]),
}


def render_page(page: str, plots: bool) -> str:
    title, intro, sections = PAGES[page]
    out = [f"# {title}", "", "<!-- generated by benchmarks/render.py from benchmarks/records/: do not edit -->", "",
           intro, ""]
    for prefix, tables, plot, command in sections:
        found = newest(prefix)
        if not found:
            out += [f"## `{prefix}`", "", f"No record yet. Record one with `{command}`.", ""]
        for name, rec, earlier in found:
            out += [f"## `{name}`", ""] + provenance(rec) + tables(rec)
            if plot is not None and rec.get("rows"):  # a record without rows (hard-memory) has no plot
                png = IMG / f"{name}.png"
                if plots:
                    plot(rec, png)
                out += [f"![{name}](img/{name}.png)", ""]
            out += history(earlier)
    return "\n".join(out).rstrip() + "\n"


def render_index() -> str:
    out = ["# Benchmarks", "", "<!-- generated by benchmarks/render.py from benchmarks/records/: do not edit -->", "",
           "Every number on these pages comes from a JSON record that a benchmark run with `--record` wrote under "
           "`benchmarks/records/<benchmark>/` (`benchmarks/records.py`): the command exactly as run, the git "
           "revision, the date, the machine (CPU, cores, memory, load average at start and end, package versions), "
           "a summary and the raw per-query or per-configuration rows.  `python benchmarks/render.py` renders these "
           "pages, their plots and the README's headline tables from the newest record of each benchmark; "
           "earlier records stay in their folders as the history.  Timings taken while other jobs share the "
           "machine are noisy: the load average says how busy it was.", "",
           "| benchmark | newest record | revision | 1-min load | command |", "|---|---|---|---:|---|"]
    for folder in sorted(RECORDS.iterdir()) if RECORDS.is_dir() else []:
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if files:
            rec = json.loads(files[-1].read_text())
            load = rec.get("machine", {}).get("load_avg_1m_start")
            out.append(f"| `{folder.name}` | {rec['date']} ({len(files)} record{'s' * (len(files) > 1)}) | "
                       f"`{rec['git_revision'][:8]}` | {num(load, 2)} | `{rec['command']}` |")
    out += ["", "Pages: [verification](verification.md), [the hard tail](hard.md), [interoperability and reliability](interop.md), [inference](inference.md), [training and presets]"
                "(training.md), [explanations and counting](explanations.md), [DNN to BNN and the cascade](dnn2bnn.md).",
            "", "## Not recorded yet", "", "The headline benchmarks that have no record, with the command that "
            "records each (long runs: hours on 2 cores; run them on a quiet machine):", ""]
    missing = [(name, cmd) for name, _, cmd in HEADLINE_RUNS if not newest_exact(name)]
    out += [f"- `{name}`: `{cmd}`" for name, cmd in missing] or ["- none"]
    return "\n".join(out) + "\n"


def newest_exact(name: str) -> Record | None:
    folder = RECORDS / name
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return json.loads(files[-1].read_text()) | {"_path": files[-1]} if files else None


# ------------------------------------------------------------------ README headlines
#: the records behind the README's headline tables, best first; (record name, tables, command)
HEADLINE_RUNS: list[tuple[str, Renderer, str]] = [
    ("verify-fashion-mnist", lambda r: verify_tables(r, full=False),
     "python benchmarks/verify.py --models fashion-mlp-small-friendly,fashion-mlp-small --images 100 "
     "--naive-images 20 --eps 1,3,5,10,15,25 --timeout 60 --solvers small --solver-images 10 --record"),
    ("verify-digits", lambda r: verify_tables(r, full=False),
     "python benchmarks/verify.py --models digits-mlp --images 20 --naive-images 5 --eps 1,2,3 --timeout 10 "
     "--solvers small --solver-images 5 --record"),
    ("hard-fashion-mlp-small-fashion-conv-small", hard_headline,
     "python benchmarks/hard.py --models fashion-mlp-small,fashion-conv-small --images 100 --eps 1,3,5,10,20 "
     "--configs default,one-core --engines '' --radius 0 --memory 0 --record"),
    ("hard", hard_headline, "python benchmarks/hard.py --images 20 --eps 1,3,5,10,20 --configs default,one-core "
                            "--one-core-images 5 --engines '' --radius 5 --radius-timeout 60 --memory 10 --record"),
    ("infer", infer_tables, "python benchmarks/infer.py --record"),
    ("infer-quick", infer_tables, "python benchmarks/infer.py --quick --record"),
    ("presets-fashion-mnist", presets_tables,
     "python benchmarks/presets.py --data fashion-mnist --arch mlp-small --epochs 5 --record"),
    ("presets-digits", presets_tables,
     "python benchmarks/presets.py --data digits --arch mlp:200,100 --epochs 20 --record"),
    ("explain-fashion-mlp-small-friendly-eps25", explain_headline,
     "python benchmarks/explain.py --models fashion-mlp-small-friendly --n 100 --eps 25 "
     "--algos deletion-margin,quickxplain --no-topk --timeout 20 --budget 60 --record"),
    ("explain-quick", explain_headline, "python benchmarks/explain.py --quick --record"),
    ("dnn2bnn-fashion-mnist", dnn2bnn_headline,
     "python benchmarks/dnn2bnn.py --dnn-epochs 4 --distill-epochs 3 --bnn-arch mlp-small --cnn-epochs 5 --record"),
    ("dnn2bnn-digits", dnn2bnn_headline, "python benchmarks/dnn2bnn.py --quick --record"),
]
#: README marker -> record names, best first (the first one recorded is shown)
HEADLINES = {"verification": ["verify-fashion-mnist", "verify-digits"], "hard": ["hard-fashion-mlp-small-fashion-conv-small", "hard"], "inference": ["infer", "infer-quick"],
             "training": ["presets-fashion-mnist", "presets-digits"],
             "explanations": ["explain-fashion-mlp-small-friendly-eps25", "explain-quick"],
             "dnn2bnn": ["dnn2bnn-fashion-mnist", "dnn2bnn-digits"]}


def headline(key: str) -> str:
    runs = {name: (tables, cmd) for name, tables, cmd in HEADLINE_RUNS}
    for name in HEADLINES[key]:
        rec = newest_exact(name)
        if rec is not None:
            tables = runs[name][0]
            # the hard tail's table names the record behind each of its rows itself
            own = [] if tables is hard_headline else provenance(rec, link=True)
            return "\n".join(tables(rec) + own).rstrip()
    name = HEADLINES[key][-1]
    return f"No record yet: `{runs[name][1]}` records it."


def render_readme(text: str) -> str:
    """README.md with every ``<!-- headline:KEY -->`` ... ``<!-- /headline:KEY -->`` block re-rendered."""
    def sub(m: re.Match) -> str:
        return f"<!-- headline:{m.group(1)} -->\n{headline(m.group(1))}\n<!-- /headline:{m.group(1)} -->"
    return re.sub(r"<!-- headline:(\w+) -->.*?<!-- /headline:\1 -->", sub, text, flags=re.S)


# ------------------------------------------------------------------ output
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, png: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    _pyplot().close(fig)


def outputs(plots: bool) -> dict[Path, str]:
    """Every generated markdown file and its text (plots are written as a side effect)."""
    out = {DOCS / page: render_page(page, plots) for page in PAGES}
    out[DOCS / "index.md"] = render_index()
    out[README] = render_readme(README.read_text())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date (no writes)")
    args = ap.parse_args()
    stale = []
    for path, text in outputs(plots=not args.check).items():
        old = path.read_text() if path.exists() else None
        if old != text:
            stale.append(rel(path))
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print("out of date (run python benchmarks/render.py): " + ", ".join(stale))
        raise SystemExit(1)
    print(("rendered: " + ", ".join(stale)) if stale else "up to date")


if __name__ == "__main__":
    main()
