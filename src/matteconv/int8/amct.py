"""Run AMCT's post-training quantization (`amct_onnx calibration` / `amct_caffe calibration`) and hand its deploy
model to atc.

Command line (CANN AMCT, "Command-line options", atlasamct_16_0337 / atlasamctonnx_16_0032):
    amct_onnx calibration --model=M.onnx --save_path=DIR/PREFIX --input_shape="input:1,3,H,W"
        --data_dir=DIR_OF_BINS --data_types=float32 --calibration_config=CFG --batch_num=N
    amct_caffe calibration --model=M.prototxt --weights=M.caffemodel ... (same options)
Options are written `--param=value` (the first of the two documented forms). Calibration data is raw float32
.bin files, one per batch, in one folder per model input; two inputs are given as `name1:shape;name2:shape` and
`dir1;dir2`, in the model's input order (the ';' separator for several inputs: as --input_shape, an assumption for
--data_dir). Outputs (AMCT "Output files"): ONNX `PREFIX_deploy_model.onnx` (what atc compiles: AscendQuant /
AscendDequant around each INT8 layer, INT32 bias) and `PREFIX_fake_quant_model.onnx` (for accuracy simulation in
onnxruntime); Caffe `PREFIX_deploy_model.prototxt` + `PREFIX_deploy_weights.caffemodel` and the fake-quant pair.

AMCT installs as a Python wheel whose entry points `amct_onnx` / `amct_caffe` land on PATH; next, the CANN
toolkit roots matteconv searches for atc (ascend.discover) with `bin/` under them. It runs as a child process group
(proc.run): killed whole on timeout, Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ascend.command import display
from ..ascend.discover import _executable, toolkit_roots
from ..errors import MatteconvError
from ..fileio import atomic_path, scratch_dir
from ..proc import run as run_in_group

TOOLS = {"onnx": "amct_onnx", "caffe": "amct_caffe"}
DEFAULT_TIMEOUT = 3600.0


def find_amct(framework: str, env=None, system_roots=None) -> Path | None:
    """amct_onnx / amct_caffe: PATH, then <toolkit root>/bin (module doc)."""
    import os

    env = os.environ if env is None else env
    name = TOOLS[framework]
    for d in env.get("PATH", "").split(os.pathsep):
        if d and _executable(Path(d) / name):
            return Path(d) / name
    kw = {} if system_roots is None else {"system_roots": system_roots}
    for root, _ in toolkit_roots(env, **kw):
        if _executable(root / "bin" / name):
            return root / "bin" / name
    return None


@dataclass
class AmctPlan:
    framework: str
    tool: Path | None
    argv: list[str]
    save_prefix: Path
    data_dirs: list[Path]

    @property
    def command(self) -> str:
        return display(self.argv)

    def outputs(self) -> dict[str, Path]:
        p = str(self.save_prefix)
        if self.framework == "onnx":
            return {"deploy": Path(p + "_deploy_model.onnx"), "fake_quant": Path(p + "_fake_quant_model.onnx")}
        return {"deploy": Path(p + "_deploy_model.prototxt"), "deploy_weights": Path(p + "_deploy_weights.caffemodel"),
                "fake_quant": Path(p + "_fake_quant_model.prototxt"),
                "fake_quant_weights": Path(p + "_fake_quant_weights.caffemodel")}


def model_inputs(model: Path) -> list[tuple[str, tuple[int, ...]]]:
    from ..ascend.command import inspect_model

    return inspect_model(model).inputs


def write_calibration_data(xs: list[np.ndarray], names: list[str], dest: Path) -> list[Path]:
    """One folder per model input under dest, one raw float32 .bin per calibration input (batch 1). A 4-channel
    tensor goes to a split model (image, prev_alpha) as its first 3 and last channel."""
    dirs = [dest / n.replace("/", "_") for n in names]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(xs):
        parts = [x] if len(names) == 1 else [x[:, :3], x[:, 3:4]]
        for d, part in zip(dirs, parts):
            with atomic_path(d / f"{i:05d}.bin") as tmp:
                np.ascontiguousarray(part, np.float32).tofile(tmp)
    return dirs


def plan_amct(model: Path, config: Path, data_dirs: list[Path], batch_num: int, save_prefix: Path,
              env=None) -> AmctPlan:
    framework = "onnx" if model.suffix.lower() == ".onnx" else "caffe"
    tool = find_amct(framework, env)
    inputs = model_inputs(model)
    shape = ";".join(f"{n}:{','.join(str(d) for d in s)}" for n, s in inputs)
    argv = [str(tool) if tool else TOOLS[framework], "calibration", f"--model={model}"]
    if framework == "caffe":
        argv.append(f"--weights={model.with_suffix('.caffemodel')}")
    argv += [f"--save_path={save_prefix}", f"--input_shape={shape}",
             f"--data_dir={';'.join(str(d) for d in data_dirs)}",
             f"--data_types={';'.join('float32' for _ in inputs)}",
             f"--calibration_config={config}", f"--batch_num={batch_num}"]
    return AmctPlan(framework, tool, argv, save_prefix, data_dirs)


def run_amct(plan: AmctPlan, out_dir: Path, log: Path, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Path]:
    """Run AMCT with its outputs in a private folder; on success they are moved into out_dir (deploy model
    first named in the result) and the whole log kept in `log`. MatteconvError when it fails or writes nothing."""
    if plan.tool is None:
        raise MatteconvError(f"{TOOLS[plan.framework]} not found (PATH, toolkit roots): run on a machine with AMCT: "
                             f"{plan.command}")
    work = scratch_dir("matteconv-amct-")
    prefix = work / plan.save_prefix.name
    argv = [a if not a.startswith("--save_path=") else f"--save_path={prefix}" for a in plan.argv]
    start = time.monotonic()
    try:
        proc = run_in_group(argv, timeout)
        text, code = proc.stdout.decode("utf-8", errors="replace"), proc.returncode
    except subprocess.TimeoutExpired as e:
        text = (e.output or b"").decode("utf-8", errors="replace") + f"\n[matteconv] killed after {timeout:g} s\n"
        code = None
    except OSError as e:
        text, code = f"[matteconv] could not start {argv[0]}: {e}\n", None
    with atomic_path(log) as tmp:
        tmp.write_text(f"$ {plan.command}\n# (run with --save_path={prefix})\n{text}", encoding="utf-8")
    made = AmctPlan(plan.framework, plan.tool, argv, prefix, plan.data_dirs).outputs()
    absent = [p.name for p in made.values() if not p.is_file()]
    if code != 0 or absent:
        why = f"exited with code {code}" if code != 0 else f"wrote no {', '.join(absent)}"
        tail = [ln for ln in text.splitlines() if ln.strip()][-3:]
        raise MatteconvError(f"{TOOLS[plan.framework]} {why} after {time.monotonic() - start:.1f} s (log {log})"
                             + (f": {' | '.join(tail)}" if tail else ""))
    final = {}
    for key, p in made.items():
        target = out_dir / p.name
        shutil.move(str(p), str(target))
        final[key] = target
    return final
