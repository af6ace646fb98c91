#!/usr/bin/env python3
"""Caffe section of `make bench`: our Caffe exports (targets bvlc and ascend) in pycaffe next to our ONNX export
in onnxruntime and PyTorch eager, 2 threads each, timed alternately in one run; plus the peer converter
brocolli 4.0.2 (torch.fx -> Caffe) on the same reference checkpoint.

Accuracy is max / mean |d alpha| against the float64 PyTorch model on the astronaut photo. Latency is the
median over --repeats alternating rounds after two untimed warm-up rounds (the first pycaffe forward
allocates). pycaffe runs in our CaffeBackend worker (a child process) with OPENBLAS_NUM_THREADS=2; its
latency includes passing the input and the matte through a pipe (a few MB, well under 1 ms).

brocolli is installed at bench time only, with `pip install --no-deps --target <tmpdir>` (plus the two pure
Python modules it imports, loguru and tabulate) and used in a child process that has that dir on sys.path: it
is never a dependency of matteconv. Whatever it cannot convert is reported with the one-line error it gave; its
accuracy is then still measured on a toy net (conv, bilinear x2 upsample, conv, sigmoid) that it can convert.
The script exits 0 whatever brocolli does. `--json FILE` writes every number."""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import time_alternately  # noqa: E402  (one timing loop for every benchmark)

PEER = "brocolli==4.0.2"
PEER_DEPS = ("loguru==0.7.3", "tabulate==0.10.0")  # what brocolli's Caffe path imports; pure Python
THREADS = 2
TOY_IN = 192  # toy net input side; its output is 2x that


class Toy(nn.Module):
    """The smallest net with one bilinear upsample: what brocolli maps to Caffe's nearest `Upsample`."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        x = F.interpolate(self.relu(self.conv1(x)), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.conv2(x))


def toy_model() -> Toy:
    torch.manual_seed(0)
    return Toy().eval()


class OneInput(nn.Module):
    """MODNet.forward(img, prev_alpha=None) minus the optional second argument."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, img):
        return self.model(img)


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


# --------------------------------------------------------------------------------------------------------
# brocolli child: runs with the --target dir on sys.path, converts, writes a JSON report. Never imported by
# the parent (brocolli imports pycaffe's C++ library, whose CHECKs abort the process).
# --------------------------------------------------------------------------------------------------------

def brocolli_child(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    out: dict = {"modnet": {}, "toy": {}}
    report = Path(spec["report"])

    def save():
        report.write_text(json.dumps(out, indent=2) + "\n")

    try:
        sys.path.insert(0, spec["target"])
        torch.set_num_threads(THREADS)
        from loguru import logger

        logger.remove()  # brocolli logs the whole fx graph at DEBUG
        logger.add(sys.stderr, level="ERROR")
        from brocolli.converter.pytorch_caffe_parser import PytorchCaffeParser
    except Exception as e:  # noqa: BLE001 - a third-party import: any failure is a result
        out["import_error"] = one_line(e)
        save()
        return 0

    from matteconv.model.checkpoint import load_checkpoint

    model = load_checkpoint(Path(spec["ckpt"])).model.eval()

    def attempt(module, x, stem):
        try:
            p = PytorchCaffeParser(module, x)
            p.convert()
            p.save(stem)
            types = Counter(layer.type for layer in p.text_net.layer)
            return {"ok": True, "prototxt": stem + ".prototxt", "caffemodel": stem + ".caffemodel",
                    "layers": sum(types.values()), "layer_counts": dict(sorted(types.items()))}
        except Exception as e:  # noqa: BLE001 - whatever the peer raises is the result
            return {"ok": False, "error": one_line(e), "where": traceback.extract_tb(e.__traceback__)[-1].name}

    for side in spec["sizes"]:
        x = torch.zeros(1, 3, side, side)
        key = f"{side}x{side}"
        # 1. as a user would call it
        res = {"stock": attempt(model, x, f"{spec['out']}/brocolli_modnet_{side}")}
        # 2. within reason: hide MODNet's optional prev_alpha argument (an unused placeholder has no shape)
        if not res["stock"]["ok"]:
            res["one_input_wrapper"] = attempt(OneInput(model), x, f"{spec['out']}/brocolli_modnet_{side}")
        # 3. every node brocolli refuses or maps lossily, not just the first (node by node through gen_ir)
        try:
            p = PytorchCaffeParser(OneInput(model), x)
            nodes = list(p.pytorch_graph.nodes)
            refused: Counter = Counter()
            for node in nodes:
                p.pytorch_graph.nodes, p.layers = [node], []
                try:
                    p.gen_ir()
                except Exception as e:  # noqa: BLE001 - "module InstanceNorm2d(16, eps=...) is not..." -> one entry per type
                    refused[re.sub(r"module (\w+)\(.*\) is not", r"module \1 is not", one_line(e))] += 1
            lossy: Counter = Counter()
            for node in nodes:
                if node.op == "call_function" and getattr(node.target, "__name__", "") == "interpolate":
                    mode, sf = node.kwargs.get("mode", "nearest"), node.kwargs.get("scale_factor")
                    if isinstance(sf, (int, float)) and (mode != "nearest" or sf != int(sf)):
                        lossy[f"interpolate({mode}, scale_factor={sf:g}) -> Upsample(nearest, scale={int(sf)})"] += 1
            res["refused_nodes"] = dict(refused)
            res["lossy_nodes"] = dict(lossy)
            res["fx_nodes"] = len(nodes)
        except Exception as e:  # noqa: BLE001
            res["scan_error"] = one_line(e)
        out["modnet"][key] = res
        save()

    toy = toy_model()
    toy.load_state_dict(torch.load(spec["toy_weights"], weights_only=True))
    out["toy"] = attempt(toy, torch.zeros(1, 3, TOY_IN, TOY_IN), f"{spec['out']}/brocolli_toy")
    save()
    return 0


# --------------------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------------------

def install_peer(target: Path) -> str | None:
    """pip install --no-deps --target; returns an error line or None."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--target", str(target), PEER, *PEER_DEPS]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return "pip install timed out after 600 s"
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        return f"pip install failed: {lines[-1] if lines else proc.returncode}"
    return None


def run_peer(target: Path, ckpt: Path, work: Path, sizes: list[int], toy_weights: Path) -> dict:
    spec = {"target": str(target), "ckpt": str(ckpt), "out": str(work), "sizes": sizes,
            "toy_weights": str(toy_weights), "report": str(work / "brocolli_report.json")}
    spec_path = work / "brocolli_spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS))
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_brocolli-child", str(spec_path)],
                              capture_output=True, text=True, timeout=1800, env=env,
                              check=False)
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        code, err = "timeout", "brocolli child did not finish within 1800 s"
    report = Path(spec["report"])
    result = json.loads(report.read_text()) if report.exists() else {"modnet": {}, "toy": {}}
    if code != 0:
        tail = [ln for ln in (err or "").splitlines() if ln.strip() and not ln.startswith("    @")]
        result["child_error"] = f"brocolli child exited with {code}: {tail[-1] if tail else 'no message'}"
    return result


def diff_stats(alpha: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    from matteconv.numeric import require_finite

    require_finite(alpha, "benchmark", "a converted model's output")  # NaN would read as a tiny difference
    d = np.abs(np.asarray(alpha, dtype=np.float64).reshape(ref.shape) - ref)
    return float(d.max()), float(d.mean())


def _rss_tree(pid: int) -> tuple[int, int]:
    """(RSS of pid, summed RSS of all its descendants) in bytes, from /proc."""
    def rss(p):
        with open(f"/proc/{p}/status") as fh:
            return next((int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmRSS:")), 0)  # 0: a zombie

    def kids(p):
        out = [int(c) for t in os.listdir(f"/proc/{p}/task") for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        return out + [g for k in out for g in kids(k)]

    return rss(pid), sum(rss(k) for k in kids(pid))


def export_cost(run) -> dict:
    """Wall s, CPU s (this process; the pycaffe worker child, counted once it has exited) and the peak RSS of
    this process, of its children and of both together, sampled every 10 ms, while `run()` exports (issue 20:
    Caffe export at 512 with its parity check <= 5 s and <= 1.5 GB)."""
    import resource
    import threading

    peak = {"parent": 0, "children": 0, "total": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                p, c = _rss_tree(os.getpid())
            except OSError:  # a child exited between listing and reading
                continue
            peak.update(parent=max(peak["parent"], p), children=max(peak["children"], c),
                        total=max(peak["total"], p + c))
            done.wait(0.01)

    th = threading.Thread(target=sample, daemon=True)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    th.start()
    try:
        run()
    finally:
        done.set()
        th.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "child_cpu_s": child_cpu, **{f"peak_{k}_mb": v / 2**20 for k, v in peak.items()}}


def worker_threads(backend) -> int | None:
    try:
        status = Path(f"/proc/{backend.worker.proc.pid}/status").read_text()
        return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("Threads:")))
    except (OSError, StopIteration, ValueError, AttributeError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per size (median; default 7)")
    ap.add_argument("--size", type=int, nargs="+", default=[384],
                    help="square model sides; 384 is always run, e.g. `--size 512` adds 512 (default 384)")
    ap.add_argument("--no-peer", action="store_true", help="skip brocolli (no pip install)")
    ap.add_argument("--_brocolli-child", dest="child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return brocolli_child(args.child)

    t_start = time.perf_counter()
    # the CaffeBackend worker inherits this environment: OpenBLAS (pthread build) sizes its pool from it
    os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    torch.set_num_threads(THREADS)

    import onnx
    from rich.console import Console
    from rich.table import Table

    from matteconv import preprocess, samples
    from matteconv.backends import OnnxBackend, TorchBackend
    from matteconv.errors import MatteconvError
    from matteconv.export.caffe import export_caffe
    from matteconv.export.caffe.convert import convert
    from matteconv.export.caffe.runner import CaffeBackend
    from matteconv.export.caffe.writer import write_caffemodel, write_prototxt
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint
    from matteconv.reference import reference_model, save_reference

    console = Console(width=140)
    sizes = sorted({384, *args.size})
    results: dict = {"repeats": args.repeats, "sizes": [f"{s}x{s}" for s in sizes], "threads": THREADS,
                     "openblas_num_threads": os.environ["OPENBLAS_NUM_THREADS"], "rows": [], "peer": {}}
    rows = results["rows"]
    with tempfile.TemporaryDirectory(prefix="bench_caffe_") as tmp:
        work = Path(tmp)
        ckpt = work / "ref3.ckpt"
        with console.status("building the reference checkpoint..."):
            save_reference(reference_model(3), ckpt)
        ck = load_checkpoint(ckpt)
        # first, as `matteconv export --to caffe` runs it: nothing of the benchmark's own (the float64 reference,
        # the toy net) in this process yet
        with console.status("Caffe export (bvlc) at 512x512 with its pycaffe parity check: time and memory..."):
            results["export_512"] = export_cost(lambda: export_caffe(ck, work / "cost_512", "bvlc", (512, 512)))
        ref64 = TorchBackend(copy.deepcopy(ck.model), torch.float64)
        toy = toy_model()
        toy_weights = work / "toy.pt"
        torch.save(toy.state_dict(), toy_weights)

        peer: dict = {"package": PEER, "deps_installed_no_deps": list(PEER_DEPS)}
        if args.no_peer:
            peer["status"] = "skipped (--no-peer)"
        else:
            target = work / "peer"
            with console.status(f"pip install --no-deps --target <tmp> {PEER} ..."):
                t0 = time.perf_counter()
                peer["install_error"] = install_peer(target)
                peer["install_s"] = time.perf_counter() - t0
            if peer["install_error"] is None:
                with console.status("brocolli: converting MODNet and the toy net (child process)..."):
                    t0 = time.perf_counter()
                    peer.update(run_peer(target, ckpt, work, sizes, toy_weights))
                    peer["convert_s"] = time.perf_counter() - t0
        results["peer"] = peer

        for side in sizes:
            size, key = (side, side), f"{side}x{side}"
            x = preprocess.prepare(samples.photos()["astronaut"], "device", size).tensor
            ref = ref64.run(x)
            with console.status(f"{key}: exporting Caffe (bvlc, ascend) and ONNX..."):
                exports = {}
                for target in ("bvlc", "ascend"):
                    t0 = time.perf_counter()
                    exports[target] = export_caffe(ck, work / f"ours_{target}_{side}", target, size)
                    exports[target].seconds = time.perf_counter() - t0
                onnx_path = work / f"ours_{side}.onnx"
                t0 = time.perf_counter()
                export_onnx(ck, onnx_path, size)
                onnx_s = time.perf_counter() - t0
            runners, meta, backends = {}, {}, []
            for target, ex in exports.items():
                be = CaffeBackend(ex.prototxt, ex.caffemodel)
                backends.append(be)
                runners[f"caffe_{target}"] = (lambda b=be, x=x: b.run(x))
                meta[f"caffe_{target}"] = {"converter": "matteconv", "target": f"caffe {target} (pycaffe)",
                                           "layers": ex.num_layers, "layer_counts": ex.layer_counts,
                                           "export_s": ex.seconds, "backend": be}
            ort = OnnxBackend(onnx_path, threads=THREADS)
            runners["onnx"] = lambda b=ort, x=x: b.run(x)
            meta["onnx"] = {"converter": "matteconv", "target": "onnx (onnxruntime)",
                            "layers": len(onnx.load(str(onnx_path)).graph.node), "export_s": onnx_s}
            eager = TorchBackend(ck.model, torch.float32)
            runners["torch"] = lambda b=eager, x=x: b.run(x)
            meta["torch"] = {"converter": "— (PyTorch)", "target": "torch eager fp32", "layers": None}
            bro = peer.get("modnet", {}).get(key, {})
            bro_ok = next((bro[k] for k in ("stock", "one_input_wrapper") if bro.get(k, {}).get("ok")), None)
            if bro_ok:
                try:
                    be = CaffeBackend(bro_ok["prototxt"], bro_ok["caffemodel"])
                    backends.append(be)
                    runners["brocolli"] = (lambda b=be, x=x: b.run(x))
                    meta["brocolli"] = {"converter": "brocolli 4.0.2", "target": "caffe (pycaffe)",
                                        "layers": bro_ok["layers"], "layer_counts": bro_ok["layer_counts"],
                                        "backend": be}
                except MatteconvError as e:
                    bro_ok = None
                    bro["run_error"] = str(e)
            try:
                acc = {k: diff_stats(fn(), ref) for k, fn in runners.items()}
                with console.status(f"{key}: timing {', '.join(runners)} alternately ({args.repeats} rounds)..."):
                    ms = time_alternately(runners, args.repeats)
                threads = {k: worker_threads(m["backend"]) for k, m in meta.items() if "backend" in m}
            finally:
                for be in backends:
                    be.close()
            for k, m in meta.items():
                m.pop("backend", None)
                rows.append({"size": key, **m, "max_abs_diff": acc[k][0], "mean_abs_diff": acc[k][1],
                             "latency_ms": ms[k], "vs_onnxruntime": ms[k] / ms["onnx"], "status": "ok",
                             "worker_threads": threads.get(k)})
            if not bro_ok and not args.no_peer:
                reason = (peer.get("install_error") or peer.get("import_error") or peer.get("child_error")
                          or bro.get("one_input_wrapper", bro.get("stock", {})).get("error")
                          or bro.get("run_error") or "no result")
                rows.append({"size": key, "converter": "brocolli 4.0.2", "target": "caffe (pycaffe)",
                             "layers": None, "max_abs_diff": None, "mean_abs_diff": None, "latency_ms": None,
                             "vs_onnxruntime": None, "status": "FAILED", "reason": reason})

        # the toy net: brocolli's bilinear -> nearest Upsample, next to ours, vs float64 torch
        toy_rows = []
        xt = preprocess.prepare(samples.photos()["astronaut"], "device", (TOY_IN, TOY_IN)).tensor
        with torch.no_grad():
            toy_ref = copy.deepcopy(toy).double()(torch.from_numpy(xt).double()).numpy()
        toy_files = {}
        try:
            net = convert(toy, {"x": (1, 3, TOY_IN, TOY_IN)}, "bvlc")
            stem = work / "ours_toy"
            write_prototxt(stem.with_suffix(".prototxt"), net, ["matteconv toy net (bench_caffe.py)"])
            write_caffemodel(stem.with_suffix(".caffemodel"), net)
            toy_files["matteconv"] = (stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel"),
                                      len(net.layers), "caffe bvlc (pycaffe)")
        except MatteconvError as e:
            toy_rows.append({"converter": "matteconv", "status": "FAILED", "reason": str(e)})
        if peer.get("toy", {}).get("ok"):
            t = peer["toy"]
            toy_files["brocolli 4.0.2"] = (Path(t["prototxt"]), Path(t["caffemodel"]), t["layers"], "caffe (pycaffe)")
        elif not args.no_peer:
            toy_rows.append({"converter": "brocolli 4.0.2", "status": "FAILED",
                             "reason": peer.get("toy", {}).get("error") or peer.get("install_error")
                             or peer.get("import_error") or peer.get("child_error") or "no result"})
        toy_backends, toy_runners = {}, {}
        try:
            for name, (proto, model, _, _) in toy_files.items():
                try:
                    toy_backends[name] = CaffeBackend(proto, model)
                    toy_runners[name] = (lambda b=toy_backends[name]: b.run(xt))
                except MatteconvError as e:
                    toy_rows.append({"converter": name, "status": "FAILED", "reason": str(e)})
            toy_acc = {k: diff_stats(fn(), toy_ref) for k, fn in toy_runners.items()}
            toy_ms = time_alternately(toy_runners, args.repeats) if toy_runners else {}
        finally:
            for be in toy_backends.values():
                be.close()
        for name in toy_runners:
            _, _, layers, target = toy_files[name]
            toy_rows.insert(0 if name == "matteconv" else len(toy_rows),
                            {"converter": name, "target": target, "layers": layers, "max_abs_diff": toy_acc[name][0],
                             "mean_abs_diff": toy_acc[name][1], "latency_ms": toy_ms[name], "status": "ok"})
        results["toy"] = {"net": f"conv3x3(3->8) relu bilinear-x2 conv1x1(8->1) sigmoid, input 1x3x{TOY_IN}x{TOY_IN} "
                                 "(astronaut photo)", "rows": toy_rows}

    results["script_s"] = time.perf_counter() - t_start

    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    t = Table(title=f"Caffe vs ONNX vs eager, MODNet, {args.repeats} alternating rounds (median; {THREADS} threads; "
                    f"|d alpha| vs float64 torch, astronaut photo)")
    for c in ("size", "converter", "target", "layers", "max|d alpha|", "mean|d alpha|", "latency ms", "vs onnxruntime"):
        t.add_column(c, justify="left" if c in ("converter", "target") else "right")
    for r in rows:
        if r["status"] != "ok":
            t.add_row(r["size"], r["converter"], r["target"], "—", "[red]FAILED[/] (below)", "—", "—", "—")
            continue
        t.add_row(r["size"], r["converter"], r["target"], fmt(r["layers"], "d"), fmt(r["max_abs_diff"], ".2e"),
                  fmt(r["mean_abs_diff"], ".2e"), fmt(r["latency_ms"], ".1f"), fmt(r["vs_onnxruntime"], ".2f"))
    for r in results["toy"]["rows"]:
        if r["status"] != "ok":
            t.add_row("toy", r["converter"], "", "—", "[red]FAILED[/] (below)", "—", "—", "—")
            continue
        t.add_row(f"toy {TOY_IN}->{2 * TOY_IN}", r["converter"], r["target"], fmt(r["layers"], "d"),
                  fmt(r["max_abs_diff"], ".2e"), fmt(r["mean_abs_diff"], ".2e"), fmt(r["latency_ms"], ".2f"), "—")
    console.print(t)
    for r in rows + results["toy"]["rows"]:
        if r["status"] != "ok":
            console.print(f"[red]{r['converter']} {r.get('size', 'toy')} FAILED:[/] {r['reason']}")
    for key, res in peer.get("modnet", {}).items():
        for how in ("stock", "one_input_wrapper"):
            if how in res and not res[how]["ok"]:
                console.print(f"brocolli {key} {how.replace('_', ' ')}: {res[how]['error']} (in {res[how]['where']})")
        if res.get("refused_nodes"):
            console.print(f"brocolli {key} refuses: " + "; ".join(f"{m} x{n}" for m, n in res["refused_nodes"].items()))
        if res.get("lossy_nodes"):
            console.print(f"brocolli {key} would map silently: "
                          + "; ".join(f"{m} x{n}" for m, n in res["lossy_nodes"].items()))
    for k in ("install_error", "import_error", "child_error"):
        if peer.get(k):
            console.print(f"[red]brocolli {k.replace('_', ' ')}: {peer[k]}[/]")
    e = results["export_512"]
    console.print(f"Caffe export bvlc 512x512 incl. pycaffe parity: {e['wall_s']:.1f} s wall (goal <= 5), CPU "
                  f"{e['cpu_s']:.1f} s + worker {e['child_cpu_s']:.1f} s; peak RSS {e['peak_total_mb']:.0f} MB "
                  f"(goal <= 1536) = parent {e['peak_parent_mb']:.0f} + worker {e['peak_children_mb']:.0f}")
    threads = {r["target"]: r.get("worker_threads") for r in rows if r.get("worker_threads")}
    console.print(f"pycaffe worker: OPENBLAS_NUM_THREADS={results['openblas_num_threads']}, threads in the worker "
                  f"process: {threads or 'unknown'}; script {results['script_s']:.0f} s")
    if args.json:
        from matteconv.fileio import json_text

        args.json.write_text(json_text(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
