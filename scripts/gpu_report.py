#!/usr/bin/env python3
"""Assembles results/gpu/<device>.md and .json from what scripts/gpu_check.sh left in
build-gpu/gpu-check/ (env.json, build/ctest JSON, bench_kernels.json, flops.csv, memory logs)
and the training runs in build-gpu/gpu.sqlite. Python 3 standard library only.

MFU = train FLOPs per token x tokens/s / peak bf16 FLOP/s, with
train FLOPs per token = 3 x (layers x `moebench flops` layer FLOPs + 2 x hidden x vocab), i.e.
forward + backward (2x forward) of the attention, router, active experts and LM head; the
embedding lookup and norms are not counted.
"""
import argparse
import csv
import io
import json
import os
import sqlite3
import statistics
import sys

TARGETS = {"S": 0.7, "L": 0.9}  # bf16 expert block vs the equal-FLOP dense chain (issue 14)
NAIVE_TARGET = 5.0  # x the naive per-expert loop
RF_VS_TOPK = 0.9  # RF-S tokens/s within 10% of top-k-S


def mfu(train_flops_per_token, tokens_per_s, peak_tflops):
    if not peak_tflops or not tokens_per_s or not train_flops_per_token:
        return None
    return train_flops_per_token * tokens_per_s / (peak_tflops * 1e12)


def train_flops_per_token(layers, layer_flops, hidden, vocab):
    return 3.0 * (layers * layer_flops + 2.0 * hidden * vocab)


def parse_bench_name(name):
    """expert_swiglu/shape:S/gate:full/.../backend:cuda/dtype:bf16[/manual_time] -> dict"""
    fields = {}
    for part in name.split("/")[1:]:
        if ":" in part:
            k, v = part.split(":", 1)
            fields[k] = v
    return fields


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def to_ms(b):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    return b["real_time"] * scale


def bench_rows(bench):
    """One row per (shape, gate, tokens, density, load, dtype): cuda / naive / dense ms."""
    by = {}
    dense = {}
    for b in (bench or {}).get("benchmarks", []):
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue
        f = parse_bench_name(b["name"])
        base = (f.get("shape"), f.get("gate"), int(f.get("tokens", 0)), f.get("density"), f.get("dtype"))
        backend = f.get("backend", "")
        if backend == "dense-cuda":
            dense[base] = to_ms(b)
            continue
        row = by.setdefault(base + (f.get("load"),), {})
        if backend == "cuda":
            row["cuda_ms"] = to_ms(b)
            row["tflops"] = b.get("tflops")
            row["ratio_to_dense"] = b.get("ratio_to_dense")
        elif backend == "naive-cuda":
            row["naive_ms"] = to_ms(b)
    rows = []
    order = {"S": 0, "M": 1, "L": 2}
    for key in sorted(by, key=lambda k: (order.get(k[0], 9), k[1], k[2], k[3], k[4], k[5] or "")):
        r = dict(zip(("shape", "gate", "tokens", "density", "dtype", "load"), key))
        r.update(by[key])
        r["dense_ms"] = dense.get(key[:5])
        if r.get("cuda_ms") and r.get("naive_ms"):
            r["x_naive"] = r["naive_ms"] / r["cuda_ms"]
        rows.append(r)
    return rows


def bench_targets(rows):
    out = []
    for shape in ("S", "M", "L"):
        rs = [r for r in rows if r["shape"] == shape and r["dtype"] == "bf16" and r.get("ratio_to_dense")]
        if not rs:
            continue
        ratios = [r["ratio_to_dense"] for r in rs]
        naive = [r["x_naive"] for r in rs if r.get("x_naive")]
        t = {"shape": shape, "rows": len(rs), "ratio_to_dense_min": min(ratios),
             "ratio_to_dense_median": statistics.median(ratios),
             "x_naive_min": min(naive) if naive else None,
             "x_naive_median": statistics.median(naive) if naive else None}
        if shape in TARGETS:
            t["dense_target"] = TARGETS[shape]
            t["dense_target_met"] = t["ratio_to_dense_median"] >= TARGETS[shape]
        if naive:
            t["naive_target"] = NAIVE_TARGET
            t["naive_target_met"] = t["x_naive_median"] >= NAIVE_TARGET
        out.append(t)
    return out


def read_flops(path):
    try:
        text = open(path).read()
    except OSError:
        return {}
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("size,method")), None)
    if start is None:
        return {}
    out = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        out[(row["size"], row["method"])] = float(row["layer FLOPs"].replace(",", ""))
    return out


def vocab_size(cfg, data_dir):
    model = cfg.get("model", {})
    if model.get("vocab_size"):
        return int(model["vocab_size"])
    manifest = load_json(os.path.join(data_dir, "tokens", model.get("vocab", "gpt2"), "manifest.json"), {})
    for key in ("vocab_size", "vocab"):
        v = manifest.get(key)
        if isinstance(v, int):
            return v
        if isinstance(v, dict) and isinstance(v.get("vocab_size"), int):
            return v["vocab_size"]
    return 50257 if model.get("vocab") == "gpt2" else None


def peak_mem(path):
    vals = []
    try:
        for line in open(path):
            line = line.strip()
            if line.isdigit():
                vals.append(int(line))
    except OSError:
        return None
    return max(vals) if vals else None


def training(db, state, flops, peak_tflops, data_dir):
    if not os.path.exists(db):
        return []
    con = sqlite3.connect(db)
    out = []
    for run_key, cfg_json, method, size, status, device, backend, wall_s in con.execute(
            "SELECT run_key, config_json, method, size, status, device, backend, wall_s FROM runs"):
        cfg = json.loads(cfg_json)
        steps = con.execute("SELECT step, loss, lm_loss, density, tokens_per_s FROM steps WHERE run_key = ? "
                            "ORDER BY step", (run_key,)).fetchall()
        last = steps[-1][0] if steps else 0
        settled = [s[4] for s in steps if s[4] and s[0] > last / 3] or [s[4] for s in steps if s[4]]
        tps = statistics.median(settled) if settled else None
        want = {10, 50, 100, 200, 300, last}
        losses = {s[0]: round(s[1], 4) for s in steps if s[0] in want and s[1] is not None}
        val = con.execute("SELECT task, metric, value FROM evals WHERE run_key = ? AND metric LIKE '%loss%' "
                          "ORDER BY step DESC LIMIT 1", (run_key,)).fetchone()
        m = cfg.get("model", {})
        V = vocab_size(cfg, data_dir)
        layer = flops.get((size, method))
        tf = train_flops_per_token(m["layers"], layer, m["hidden"], V) if layer and V else None
        info = load_json(os.path.join(state, "train_%s.json" % method), {})
        mem = peak_mem(os.path.join(state, "mem_%s.log" % method))
        out.append({
            "method": method, "size": size, "status": status, "device": device, "backend": backend,
            "dtype": cfg.get("train", {}).get("dtype"), "steps": last, "wall_s": wall_s,
            "tokens_per_s_median_settled": tps, "train_flops_per_token": tf,
            "mfu": mfu(tf, tps, peak_tflops), "peak_memory_mib": mem,
            "memory_before_mib": info.get("mem_base_mib"),
            "loss_at_step": losses, "final_density": steps[-1][3] if steps else None,
            "val": {"task": val[0], "metric": val[1], "value": val[2]} if val else None,
        })
    return out


def fmt(x, spec="{:.3g}"):
    return "" if x is None else spec.format(x)


def markdown(rep):
    e = rep["env"]
    md = ["# GPU check: %s" % e.get("gpu_name", "?"), "",
          "Made by `make gpu-check` (scripts/gpu_check.sh); every figure is also in the .json beside this file.", "",
          "| fact | value |", "|---|---|"]
    for k in ("gpu_name", "gpu_cap", "gpu_arch", "gpu_memory", "driver", "nvcc", "torch", "torch_cuda",
              "torch_source", "commit", "dirty", "host_cpus"):
        md.append("| %s | %s |" % (k, e.get(k, "")))
    b, c = rep.get("build", {}), rep.get("ctest", {})
    md += ["", "Build: %s s. `ctest -L gpu`: %s (%s s)." % (
        b.get("build_s", "not run"),
        {0: "passed", None: "not run"}.get(c.get("ctest_rc"), "FAILED (rc %s)" % c.get("ctest_rc")),
        c.get("ctest_s", "-"))]
    md += ["", "## Expert block forward + backward (bench_kernels, CUDA)", "",
           "| shape | dtype | rows | vs dense median (min) | target | x naive median (min) | >= 5x |",
           "|---|---|---|---|---|---|---|"]
    for t in rep["bench_targets"]:
        md.append("| %s | bf16 | %d | %s (%s) | %s | %s (%s) | %s |" % (
            t["shape"], t["rows"], fmt(t["ratio_to_dense_median"]), fmt(t["ratio_to_dense_min"]),
            ("%.1f: %s" % (t["dense_target"], "met" if t["dense_target_met"] else "NOT met")) if "dense_target" in t else "-",
            fmt(t.get("x_naive_median")), fmt(t.get("x_naive_min")),
            ("met" if t.get("naive_target_met") else "NOT met") if "naive_target" in t else "-"))
    md += ["", "| shape | gate | tokens | density | load | dtype | cuda ms | dense ms | naive ms | vs dense | x naive | TFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["bench"]:
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["shape"], r["gate"], r["tokens"], r["density"], r["load"], r["dtype"], fmt(r.get("cuda_ms")),
            fmt(r.get("dense_ms")), fmt(r.get("naive_ms")), fmt(r.get("ratio_to_dense")), fmt(r.get("x_naive")),
            fmt(r.get("tflops"))))
    md += ["", "## Training at S, bf16 (GPT-2 vocabulary)", "",
           "Peak bf16: %s TFLOP/s. MFU = 3 x (layers x layer FLOPs + 2 x hidden x vocab) x tokens/s / peak. "
           "tokens/s: median over the steps after the first third. Memory: nvidia-smi, whole device." %
           (rep["peak_bf16_tflops"] or "unknown"), "",
           "| method | status | steps | tokens/s | MFU | peak MiB | losses (step: loss) | final density | val |",
           "|---|---|---|---|---|---|---|---|---|"]
    for t in rep["training"]:
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            t["method"], t["status"], t["steps"], fmt(t["tokens_per_s_median_settled"], "{:.0f}"),
            fmt(t["mfu"], "{:.1%}"), fmt(t["peak_memory_mib"], "{}"),
            ", ".join("%s: %s" % kv for kv in sorted(t["loss_at_step"].items())), fmt(t["final_density"]),
            fmt((t["val"] or {}).get("value"), "{:.4f}")))
    if rep.get("rf_vs_topk_tokens_per_s") is not None:
        md += ["", "RF-S / top-k-S tokens/s: %.3f (target >= %.2f: %s)." % (
            rep["rf_vs_topk_tokens_per_s"], RF_VS_TOPK,
            "met" if rep["rf_vs_topk_tokens_per_s"] >= RF_VS_TOPK else "NOT met")]
    return "\n".join(md) + "\n"


def self_test():
    ok = True
    def check(what, cond):
        nonlocal ok
        print("  %s %s" % ("ok  " if cond else "FAIL", what))
        ok = ok and cond
    check("mfu 7.5e8 x 4e5 / 989 TFLOP/s = 0.3033", abs(mfu(7.5e8, 4e5, 989) - 0.30333) < 1e-4)
    check("mfu without a peak is None", mfu(1e9, 1e5, 0) is None)
    # S: 12 layers x 3,826,688 + 2 x 512 x 50257 = 97,383,424 forward -> x3
    check("train FLOPs/token at S", train_flops_per_token(12, 3826688, 512, 50257) == 3 * 97383424)
    f = parse_bench_name("expert_swiglu/shape:L/gate:lowrank/tokens:8192/density:0.5/load:zipf/"
                         "backend:naive-cuda/dtype:bf16/manual_time")
    check("bench name parse", f == {"shape": "L", "gate": "lowrank", "tokens": "8192", "density": "0.5",
                                    "load": "zipf", "backend": "naive-cuda", "dtype": "bf16"})
    fake = {"benchmarks": [
        {"name": "expert_swiglu/shape:S/gate:full/tokens:2048/density:0.25/load:zipf/backend:cuda/dtype:bf16/manual_time",
         "real_time": 2.0, "time_unit": "ms", "ratio_to_dense": 0.8, "tflops": 10.0},
        {"name": "expert_swiglu/shape:S/gate:full/tokens:2048/density:0.25/load:zipf/backend:naive-cuda/dtype:bf16/manual_time",
         "real_time": 12000.0, "time_unit": "us"},
        {"name": "expert_swiglu/shape:S/gate:full/tokens:2048/density:0.25/backend:dense-cuda/dtype:bf16/manual_time",
         "real_time": 1.6, "time_unit": "ms"}]}
    rows = bench_rows(fake)
    check("bench rows joined", len(rows) == 1 and rows[0]["x_naive"] == 6.0 and rows[0]["dense_ms"] == 1.6)
    t = bench_targets(rows)
    check("bench targets", t[0]["dense_target_met"] and t[0]["naive_target_met"])
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--state")
    ap.add_argument("--db")
    ap.add_argument("--out")
    ap.add_argument("--device-file")
    ap.add_argument("--peak-tflops", type=float, default=0)
    ap.add_argument("--data", default="data")
    a = ap.parse_args()
    if a.self_test:
        return 0 if self_test() else 1
    if not (a.state and a.db and a.out and a.device_file):
        ap.error("--state, --db, --out and --device-file are required")
    env = load_json(os.path.join(a.state, "env.json"), {})
    flops = read_flops(os.path.join(a.state, "flops.csv"))
    rows = bench_rows(load_json(os.path.join(a.state, "bench_kernels.json")))
    rep = {
        "env": env,
        "build": load_json(os.path.join(a.state, "build.json"), {}),
        "ctest": load_json(os.path.join(a.state, "ctest.json"), {}),
        "peak_bf16_tflops": a.peak_tflops or None,
        "bench_targets": bench_targets(rows),
        "bench": rows,
        "training": training(a.db, a.state, flops, a.peak_tflops, a.data),
    }
    tps = {t["method"]: t["tokens_per_s_median_settled"] for t in rep["training"]}
    if tps.get("routing_free") and tps.get("topk"):
        rep["rf_vs_topk_tokens_per_s"] = tps["routing_free"] / tps["topk"]
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, a.device_file)
    with open(base + ".json", "w") as f:
        json.dump(rep, f, indent=2, sort_keys=True)
    with open(base + ".md", "w") as f:
        f.write(markdown(rep))
    print("gpu-check: wrote %s.md and %s.json" % (base, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
