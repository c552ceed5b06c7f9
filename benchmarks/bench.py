"""Side-by-side LSTM benchmark: jaxlstm against Flax, Equinox, Keras (JAX backend) and PyTorch on CPU.

    python benchmarks/bench.py            # the full run (~15 min on 2 cores); writes RESULTS.md
    python benchmarks/bench.py --quick    # fewer shapes and shorter timing, prints only

Every implementation and shape runs in its own process (``worker.py``), one after another, so no two
libraries share threads, caches or allocators and each reports its own peak RSS. Times are medians.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from worker import SHAPES, STREAM  # noqa: E402

PEERS = ["flax", "flax-optimized", "equinox", "keras", "torch", "torch:1"]
DEFAULT_IMPLS = ["jaxlstm", "jaxlstm:2dev", "jaxlstm:scan", *PEERS]
PACKAGES = ["jax", "jaxlib", "flax", "equinox", "keras", "torch", "numpy"]


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_name() -> str:
    """Model name, family/model numbers and the SIMD flags that decide kernel choices."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or "unknown"
    flags = set(fields.get("flags", "").split())
    simd = " ".join(f for f in SIMD_FLAGS if f in flags) or "none of " + " ".join(SIMD_FLAGS)
    return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}; {simd})"


def run_worker(impl: str, task: str, budget: float, min_reps: int) -> dict | None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    cmd = [
        sys.executable,
        str(HERE / "worker.py"),
        impl,
        task,
        "--budget",
        str(budget),
        "--min-reps",
        str(min_reps),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        print(f"  {impl} {task}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flops(task: str, mode: str) -> float:
    if task == "stream":
        B, I, H = STREAM
        T = 1
    else:
        B, T, I, H = SHAPES[task]
    fwd = 2.0 * T * B * (I + H) * 4 * H
    return fwd * (3.0 if mode == "train" else 1.0)


def fmt_ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def render(results, impls, tasks, gemm, meta) -> str:
    peak = max(gemm.values()) if gemm else float("nan")
    ours = impls[0]
    # A ratio column for each jaxlstm configuration a user would run (not the reference scan).
    rated = [i for i in impls if i not in PEERS and not i.endswith(":scan")]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}  ",
        f"CPU: {meta['cpu']}, {meta['cores']} cores; load average before/after: {meta['load_before']} / "
        f"{meta['load_after']}  ",
        f"Versions: {meta['versions']}  ",
        "Single-GEMM peak (float32 square matmul, best of 512/1024/2048, same run): "
        + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gemm.items())
        + f"; peak used below: {peak:.1f} GFLOP/s  ",
        f"Wall time of the run: {meta['wall_s']:.0f} s; {meta['rounds']} round(s) per shape in alternating "
        "order, each implementation's best round (lowest median) kept",
        "",
        f"Median ms per call (ratio = {' and '.join(rated)} / fastest peer in this run; <= 1.00 means "
        f"it is fastest). GFLOP/s and % of GEMM peak are {ours}'s, counting forward 2·T·B·(I+H)·4H "
        "and training 3x that.",
        "",
        "| shape (B/T/I/H) | mode | "
        + " | ".join(impls)
        + " | "
        + " | ".join(f"ratio {r}" for r in rated)
        + " | GFLOP/s | % peak |",
        "|---|---|" + "---|" * (len(impls) + len(rated) + 2),
    ]
    for task in tasks:
        shape = "/".join(map(str, SHAPES[task])) if task in SHAPES else "B=1,I=256,H=256 one step"
        for mode in ("forward", "train"):
            row = {i: results.get((i, task), {}).get(mode) for i in impls}
            if all(v is None for v in row.values()):
                continue
            peer_ms = [row[p]["median_ms"] for p in impls if p in PEERS and row[p]]
            cells = [fmt_ms(row[i]["median_ms"]) if row[i] else "-" for i in impls]
            ratios = [
                f"{row[r]['median_ms'] / min(peer_ms):.2f}" if row[r] and peer_ms else "-" for r in rated
            ]
            gf = pct = "-"
            if row[ours]:
                g = flops(task, mode) / (row[ours]["median_ms"] * 1e-3) / 1e9
                gf, pct = f"{g:.1f}", f"{100 * g / peak:.0f}%"
            lines.append(
                f"| {task} {shape} | {mode} | " + " | ".join([*cells, *ratios]) + f" | {gf} | {pct} |"
            )
    lines += [
        "",
        "Details: compile = first call minus the median (trace + compile), RSS = the process's peak "
        "resident memory after that mode.",
        "",
        "| impl | shape | mode | median ms | min ms | reps | compile s | peak RSS MiB | GFLOP/s | % peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for impl in impls:
            for mode in ("forward", "train"):
                r = results.get((impl, task), {}).get(mode)
                if not r:
                    continue
                g = flops(task, mode) / (r["median_ms"] * 1e-3) / 1e9
                lines.append(
                    f"| {impl} | {task} | {mode} | {fmt_ms(r['median_ms'])} | {fmt_ms(r['min_ms'])} | "
                    f"{r['reps']} | {r['compile_s']:.2f} | {r['rss_mib']:.0f} | {g:.1f} | {100 * g / peak:.0f}% |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small+medium+stream, 0.5 s per measurement")
    ap.add_argument("--impls", default=",".join(DEFAULT_IMPLS), help="comma list; the first is 'ours'")
    ap.add_argument("--shapes", default=None, help="comma list of " + ",".join([*SHAPES, "stream"]))
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed reps per measurement")
    ap.add_argument("--rounds", type=int, default=None, help="passes per shape (default 2, quick 1)")
    ap.add_argument("--out", default=None, help="markdown file (full runs default to RESULTS.md)")
    a = ap.parse_args()
    impls = a.impls.split(",")
    tasks = (
        a.shapes.split(",") if a.shapes else ["small", "medium", "stream"] if a.quick else [*SHAPES, "stream"]
    )
    budget = a.budget if a.budget is not None else (0.5 if a.quick else 1.0)
    min_reps = 5 if a.quick else 7
    rounds = a.rounds if a.rounds is not None else (1 if a.quick else 2)
    out = a.out or (None if a.quick or a.shapes else str(HERE / "RESULTS.md"))

    meta = {
        "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": ", ".join(f"{p} {md.version(p)}" for p in PACKAGES if _installed(p))
        + f", python {platform.python_version()}",
    }
    t_start = time.time()
    gemm = {}
    for lib in ("jax", "torch"):
        r = run_worker(lib, "gemm", budget, 5)
        if r:
            gemm[lib] = r["gflops"]
            print(f"GEMM peak {lib}: {r['gflops']:.1f} GFLOP/s", flush=True)
    results = {}
    for task in tasks:
        # Rounds in alternating order; per mode keep the round with the lowest median, so a burst of
        # load from other processes during one implementation's turn does not decide the table.
        for rnd in range(rounds):
            for impl in impls if rnd % 2 == 0 else impls[::-1]:
                r = run_worker(impl, task, budget, min_reps)
                if not r:
                    continue
                best = results.setdefault((impl, task), {})
                for mode in ("forward", "train"):
                    if mode in r and (mode not in best or r[mode]["median_ms"] < best[mode]["median_ms"]):
                        best[mode] = r[mode]
                summary = "  ".join(f"{m} {r[m]['median_ms']:.3f} ms" for m in ("forward", "train") if m in r)
                print(f"{task:7s} {impl:16s} round {rnd + 1}: {summary}", flush=True)
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["wall_s"] = time.time() - t_start
    meta["rounds"] = rounds
    text = render(results, impls, tasks, gemm, meta)
    print("\n" + text)
    if out:
        Path(out).write_text(text if not Path(out).exists() else _replace_run(Path(out).read_text(), text))
        print(f"written to {out}")


RUN_BEGIN, RUN_END = "<!-- run:begin -->", "<!-- run:end -->"


def _replace_run(doc: str, run: str) -> str:
    """Keep RESULTS.md's hand-written notes; replace only the block between the run markers."""
    if RUN_BEGIN in doc and RUN_END in doc:
        head, rest = doc.split(RUN_BEGIN, 1)
        tail = rest.split(RUN_END, 1)[1]
        return f"{head}{RUN_BEGIN}\n{run}{RUN_END}{tail}"
    return f"{doc.rstrip()}\n\n{RUN_BEGIN}\n{run}{RUN_END}\n"


def _installed(pkg: str) -> bool:
    try:
        md.version(pkg)
        return True
    except md.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
