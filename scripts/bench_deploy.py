#!/usr/bin/env python
"""Benchmark the generated device app on the host: end-to-end fps of the simulated app vs model-only fps of the
same backend (the stand-in runtime: emulated AIPP + onnxruntime), at 384x384.

Builds the reference 3-channel checkpoint, exports ONNX at --size, writes an NV21 AIPP config, "compiles" the
.om with the stand-in atc (tests/fakes/atc: it records the build, so the stand-ins find the ONNX model), generates
the app for each --runtime and runs it (unchanged, in a child process) on a 48-frame 640x480 clip:
  model-only:  the app's own --bench-model N (runtime.infer on one prepared frame, nothing else running)
  end-to-end:  the app on the clip, every frame (no drops): read, pre, infer, post, show in their threads
The two alternate --repeat times; the best of each is kept. Goal: end-to-end >= 90% of model-only (the seed
measured 44 ms / 60 ms = 73% on the device). Always exits 0 (prints MISSED).

The ratio judges the app: what the HiLens stand-ins spend emulating hardware the board has (decoding the mp4
into NV21 camera frames, recording the HDMI output to a file) runs off the app's clock (simulate(offclock=True):
before the first read and at exit) and is reported beside it as "stand-in ms/frame". The acl/ais_bench apps
read and write files with OpenCV themselves (a USB camera on the board), so their read/show stay in the ratio.
Measured (issue 20, AMD EPYC AVX2, load average 12 on 2 cores): hilens 93.1%, stand-ins 8.0 / 14.5 ms per frame.

    python scripts/bench_deploy.py [--size 384] [--frames 48] [--runtime hilens --runtime acl] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.90


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--runtime", action="append", help="hilens, acl, ais_bench (default: hilens and acl)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    runtimes = args.runtime or ["hilens", "acl"]

    from rich.console import Console
    from rich.table import Table

    sys.path.insert(0, str(ROOT / "tests"))
    import fakes
    from matteconv import samples
    from matteconv.aipp import AippSpec, render_config
    from matteconv.ascend.build import build_om
    from matteconv.deploy import DeployOptions, generate_app, simulate
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint
    from matteconv.reference import reference_model, save_reference
    from matteconv.video import write_test_video

    console = Console()
    size = (args.size, args.size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_deploy.") as d:
        d = Path(d)
        with console.status("reference model -> ONNX -> AIPP config -> .om (stand-in atc)..."):
            ckpt = d / "ref3.pth"
            save_reference(reference_model(3, 0), ckpt)
            onnx_path = d / f"ref3_{args.size}.onnx"
            export_onnx(load_checkpoint(ckpt), onnx_path, size)
            cfg = d / "nv21.cfg"
            cfg.write_text(render_config(AippSpec("nv21", size)))
            fakes.install("atc", d / "bin")
            om = build_om(onnx_path, d / "ref3", cfg, env=fakes.env_with_path(d / "bin")).om
        side = min(args.width, args.height)
        clip = samples.clip(args.frames, side, max(1, side // 60))
        frames = [cv2.resize(f, (args.width, args.height), interpolation=cv2.INTER_LINEAR) for f in clip]
        video = write_test_video(d / "in.mp4", frames)
        for runtime in runtimes:
            app = generate_app(om, d / f"app_{runtime}", DeployOptions(runtime=runtime)).app
            model_fps, best, standin = 0.0, None, None
            for r in range(args.repeat):
                with console.status(f"{runtime}: model-only and end-to-end, round {r + 1}/{args.repeat}..."):
                    bench = simulate(app, video, d / f"unused_{runtime}_{r}.mp4", bench_model=args.frames)
                    model_fps = max(model_fps, bench.stats["model_only"]["fps"])
                    sim = simulate(app, video, d / f"out_{runtime}_{r}.mp4", report_every=args.frames,
                                   offclock=True)
                    if best is None or sim.stats["fps"] > best["fps"]:
                        best = sim.stats
                        hil = sim.device.get("hilens", {})
                        n = max(1, best["frames"])
                        standin = {"camera": round(hil.get("camera_ms", 0.0) / n, 2),
                                   "display": round(hil.get("display_ms", 0.0) / n, 2)} if hil else None
            ratio = best["fps"] / model_fps if model_fps else 0.0
            rows.append({"runtime": runtime, "model_only_fps": round(model_fps, 2), "end_to_end_fps": best["fps"],
                         "stage_ms": best["stage_ms"], "infer_fps_inside": best["infer_fps"],
                         "standin_ms_per_frame": standin,
                         "ratio": round(ratio, 3), "goal": GOAL, "met": ratio >= GOAL})
    from cpuid_mask import labelled  # scripts/, beside this file
    from matteconv.cpuinfo import cpu_kind

    result = {"cpu": labelled(cpu_kind()),
              "model": f"reference MODNet (3-channel) {args.size}x{args.size}, NV21 AIPP, stand-in device "
                       "(emulated AIPP + onnxruntime CPU, 2 threads)",
              "video": f"{args.frames} frames {args.width}x{args.height} mp4v", "runs": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    t = Table(title=f"simulated device app: {result['model']}; {result['video']}; CPU: {result['cpu']}",
              title_justify="left")
    for c in ("runtime", "model-only fps", "end-to-end fps", "ratio (goal >= 90%)", "read/pre/infer/post/show ms",
              "stand-in ms/frame (camera/display, off the clock)"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["runtime"], f"{r['model_only_fps']:.1f}", f"{r['end_to_end_fps']:.1f}", f"{r['ratio']:.1%}",
                  " / ".join(f"{r['stage_ms'][s]:.1f}" for s in ("read", "pre", "infer", "post", "show")),
                  f"{r['standin_ms_per_frame']['camera']:.1f} / {r['standin_ms_per_frame']['display']:.1f}"
                  if r["standin_ms_per_frame"] else "- (the app's own OpenCV I/O, in the ratio)")
    console.print(t)
    for r in rows:
        console.print(f"{r['runtime']}: " + ("[green]MET[/]" if r["met"] else
                                             f"[bold red]MISSED[/] ({r['ratio']:.1%} of model-only)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
