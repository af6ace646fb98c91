#!/usr/bin/env python3
"""`make bench`: latency of PyTorch eager, a plain torch.onnx.export and our ONNX exports in onnxruntime
(2 threads each), timed alternately in one run so machine noise hits all equally; reported as ratios.
Goals (issues 2, 20), judged on the export for onnxruntime (`--runtime onnxruntime`); the export for any runtime
(the file atc takes) is timed beside it: ours / plain <= 0.85 and eager / ours >= 1.4. Further sections (pycaffe, peers, matte
throughput) run when their scripts exist. `--json FILE` writes the numbers. `--kernels avx2` (`make bench-avx2`) reruns
it all with every library's AVX2 kernels on an AVX-512 CPU: an indication for the AMD EPYC kind, not its measurement."""
from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cpuid_mask  # scripts/, beside this file

os.environ.setdefault("GLOG_minloglevel", "2")
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from matteconv import preprocess, samples  # noqa: E402
from matteconv.backends import ort_session  # noqa: E402
from matteconv.cpuinfo import cpu_kind  # noqa: E402
from matteconv.export.onnx import export_onnx  # noqa: E402
from matteconv.model.checkpoint import load_checkpoint  # noqa: E402
from matteconv.reference import reference_model, save_reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=140)


def plain_export(model: torch.nn.Module, size: tuple[int, int]) -> bytes:
    """What users do today: torch.onnx.export at opset 11, nothing else."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *size),), buf, opset_version=11, input_names=["input"],
                          output_names=["alpha"], dynamo=False)
    return buf.getvalue()


SPREAD_WARN = 0.10  # a runner's slowest tenth 10% above its fastest tenth: other load shared the machine


def time_alternately(runners: dict, repeats: int, warmup: int = 2, cpu: dict | None = None,
                     spread: dict | None = None) -> dict[str, float]:
    """Median ms per runner. Runners take turns, each round in the next permutation of their order, so every
    runner follows every other equally often: neither machine noise nor the one running just before (PyTorch's
    OpenMP threads still spinning, say) favours any of them. `cpu`, if given, receives the median CPU ms of
    this process per runner (all its threads), which other load on the machine disturbs far less. `spread`, if
    given, receives per runner its 90th / 10th percentile time - 1: on an idle machine a few %; above
    SPREAD_WARN, another tenant shared the cores for part of the run (on the 2-core AMD EPYC kind such stretches
    slowed everything by 20-25% and raised ours / plain by 3-10%, as ours is the more compute-bound)."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in runners}
    cpu_times = {k: [] for k in runners}
    orders = list(itertools.permutations(runners))
    for i in range(repeats):
        for k in orders[i % len(orders)]:
            t0, c0 = time.perf_counter(), time.process_time()
            runners[k]()
            times[k].append(time.perf_counter() - t0)
            cpu_times[k].append(time.process_time() - c0)
    if cpu is not None:
        cpu.update({k: statistics.median(v) * 1000 for k, v in cpu_times.items()})
    if spread is not None:
        for k, v in times.items():
            deciles = statistics.quantiles(v, n=10)
            spread[k] = deciles[-1] / deciles[0] - 1
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def bench_core(ckpt: Path, work: Path, sizes, repeats: int) -> list[dict]:
    """Per size: torch eager, the plain export, our export for any runtime (the file atc takes) and our export for
    onnxruntime (`--runtime onnxruntime`, the ort-* passes), timed alternately. The goals judge the last."""
    torch.set_num_threads(2)
    ck = load_checkpoint(ckpt)
    rows = []
    for size in sizes:
        x = preprocess.prepare(samples.photos()["astronaut"], "device", size).tensor
        any_path, ours_path = work / f"any_{size[0]}.onnx", work / f"ours_{size[0]}.onnx"
        export_onnx(ck, any_path, size)
        t0 = time.perf_counter()
        export_onnx(ck, ours_path, size, runtime="onnxruntime")
        export_s = time.perf_counter() - t0
        anyrt, ours = ort_session(any_path.read_bytes()), ort_session(ours_path.read_bytes())
        plain = ort_session(plain_export(ck.model, size))
        xt = torch.from_numpy(x)

        def eager():
            with torch.no_grad():
                ck.model(xt)

        spread: dict = {}
        ms = time_alternately({"eager": eager, "plain": lambda: plain.run(None, {"input": x}),
                               "any": lambda: anyrt.run(None, {"input": x}),
                               "ours": lambda: ours.run(None, {"input": x})}, repeats, spread=spread)
        rows.append({"size": f"{size[0]}x{size[1]}", "torch_eager_ms": ms["eager"], "plain_onnx_ms": ms["plain"],
                     "any_onnx_ms": ms["any"], "any_vs_plain": ms["any"] / ms["plain"],
                     "ours_onnx_ms": ms["ours"], "ours_vs_plain": ms["ours"] / ms["plain"],
                     "eager_vs_ours": ms["eager"] / ms["ours"], "export_s": export_s,
                     "timing_spread": max(spread["plain"], spread["ours"])})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=24, help="timed rounds (a multiple of 24 balances 4 runners)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--kernels", choices=("native", "avx2"), default="native",
                    help="avx2: every library's AVX2 kernels on an AVX-512 CPU (scripts/cpuid_mask.py, `make "
                         "bench-avx2`): an indication for the AMD EPYC kind, labelled as such")
    args = ap.parse_args()
    cpu = cpu_kind()
    if args.kernels == "avx2":
        cpu += f"; {cpuid_mask.reexec_masked(ROOT / 'build')}"
    results: dict = {"cpu": cpu}
    console.print(f"CPU kind: [bold]{cpu}[/] (printed beside every ratio below)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = work / "ref3.ckpt"
        with console.status("building the reference checkpoint..."):
            save_reference(reference_model(3), ckpt)
        with console.status("timing torch eager / plain ONNX / our ONNX at 384 and 512..."):
            results["onnx"] = bench_core(ckpt, work, [(384, 384), (512, 512)], args.repeats)
        for r in results["onnx"]:
            r["cpu"] = cpu
        t = Table(title=f"MODNet latency, median ms (2 threads, timed alternately); CPU: {cpu}")
        for c in ("size", "torch eager", "plain torch.onnx.export", "ours, any runtime (atc)", "any/plain",
                  "ours, --runtime onnxruntime", "ours/plain (goal <= 0.85)", "eager/ours (goal >= 1.4)", "export s",
                  "CPU kind"):
            t.add_column(c, justify="right")
        for r in results["onnx"]:
            t.add_row(r["size"], f"{r['torch_eager_ms']:.1f}", f"{r['plain_onnx_ms']:.1f}", f"{r['any_onnx_ms']:.1f}",
                      f"{r['any_vs_plain']:.3f}", f"{r['ours_onnx_ms']:.1f}", f"{r['ours_vs_plain']:.3f}",
                      f"{r['eager_vs_ours']:.2f}", f"{r['export_s']:.1f}", cpu)
        console.print(t)
        for r in results["onnx"]:
            if r["timing_spread"] > SPREAD_WARN:
                console.print(f"[yellow]{r['size']}: timings spread {r['timing_spread']:.0%} (slowest tenth against "
                              "fastest): other load shared this machine during the run, which raises ours/plain "
                              "by a few %; rerun on a quiet machine before judging the goal[/]")
        for extra in ("bench_caffe.py", "bench_matte.py", "bench_train.py", "bench_deploy.py", "bench_int8.py",
                      "bench_variants.py"):
            script = ROOT / "scripts" / extra
            if script.exists():
                console.print(f"[dim]{extra}: ratios below measured on CPU: {cpu}[/]")
                out = work / f"{extra}.json"
                proc = subprocess.run([sys.executable, str(script), "--json", str(out)], check=False)
                if proc.returncode == 0 and out.exists():
                    data = json.loads(out.read_text())
                    results[extra.removesuffix(".py")] = ({**data, "cpu": cpu} if isinstance(data, dict)
                                                          else {"rows": data, "cpu": cpu})
                else:
                    console.print(f"[red]{extra} failed (exit {proc.returncode})[/]")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
