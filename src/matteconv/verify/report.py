"""Render a VerifyReport: a rich table for people, JSON and JUnit XML for machines."""
from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from rich.table import Table

from .. import __version__
from ..fileio import atomic_path, json_text
from .metrics import CONFIDENT
from .run import METRIC_KEYS, VerifyReport

HEADERS = {"max_abs": "max|d|", "mean_abs": "mean|d|", "sad": "SAD", "mse": "MSE", "grad": "Grad", "conn": "Conn"}
STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow", "error": "bold red"}


def floor_ratio(r, floor) -> str:
    """Stage max / the fp32 PyTorch max, for stages judged on their alpha (blank for input-judged ones)."""
    if r.inputs is not None or not floor or not floor.worst.get("max_abs"):
        return ""
    return f"{r.worst['max_abs'] / floor.worst['max_abs']:.2f}"


def tolerance_text(tol: dict) -> str:
    if "rule" in tol:  # judged against the predicted .om, input by input: the largest allowance
        return f"vs predicted: {tol['max_abs']:.3g} / {tol['mean_abs']:.3g}"
    if "max_abs" in tol:
        conf = (f"; confident {tol['confident_max_abs']:g} / {tol['confident_mean_abs']:g}"
                if "confident_max_abs" in tol else "")
        return f"{tol['max_abs']:g} / {tol['mean_abs']:g}{conf}"
    return f"input {tol.get('input_max_lsb', 0):g} / {tol.get('input_mean_lsb', 0):g} LSB"


def table(report: VerifyReport) -> Table:
    """Stage x metric (worst over inputs); reasons and extra comparisons go in `notes`."""
    floor = report.floor
    t = Table(title=f"verify {report.golden}: {len(report.inputs)} inputs at {report.size[0]}x{report.size[1]}, "
                    f"errors vs float64 golden (worst input)", title_justify="left")
    for c in ("stage", "status", *(HEADERS[k] for k in METRIC_KEYS), "worst input", "tolerance max/mean", "x floor"):
        t.add_column(c, justify="left" if c in ("stage", "status", "worst input") else "right")
    for r in report.results:
        status = f"[{STYLE[r.status]}]{r.status}[/]"
        if not r.worst:
            t.add_row(r.label or r.name, status, *[""] * len(METRIC_KEYS), "", tolerance_text(r.tolerance), "")
            continue
        ratio = floor_ratio(r, floor)
        t.add_row(r.label or r.name, status, *[f"{r.worst[k]:.3g}" for k in METRIC_KEYS], r.worst_input, tolerance_text(r.tolerance),
                  ratio)
    if floor:
        t.caption = (f"noise floor (x floor = stage max / this): PyTorch fp32 vs float64 = max "
                     f"{floor.worst['max_abs']:.3g}, mean {floor.worst['mean_abs']:.3g}")
    return t


def notes(report: VerifyReport) -> list[str]:
    """One line per skip, error, failure reason and extra comparison."""
    out = []
    for r in report.results:
        if r.reason:
            out.append(f"{r.name}: {r.status}: {r.reason}")
        if r.inputs:
            out.append(f"{r.name}: model input vs reference path: max {r.inputs['input_max_lsb']:.3g} LSB, "
                       f"mean {r.inputs['input_mean_lsb']:.3g} LSB, off the whole-LSB grid by "
                       f"{r.inputs.get('input_fraction_lsb', 0):.3g} LSB")
        if r.predicted:
            p = r.predicted
            out.append(f"{r.name}: judged against the predicted .om (fp16 emulator of its source) on each input: "
                       f"max {p['max_abs']:.3g} (predicted {p['predicted_max_abs']:.3g}), mean {p['mean_abs']:.3g} "
                       f"(predicted {p['predicted_mean_abs']:.3g}); allowed {r.tolerance.get('rule', '')}")
        if "confident_max_abs" in r.tolerance and "confident_max_abs" in r.worst:
            w = r.worst
            lo, hi = CONFIDENT
            out.append(f"{r.name}: on confident pixels (golden alpha < {lo:g} or > {hi:g}; at least "
                       f"{100 * w.get('confident_share', 0):.0f}% of each frame): max {w['confident_max_abs']:.3g}, mean "
                       f"{w['confident_mean_abs']:.3g}")
        if "label_sad" in r.worst:
            w = r.worst
            out.append(f"{r.name}: against the composites' exact labels (matting itself, not judged; worst): SAD "
                       f"{w['label_sad']:.3g}, MSE {w['label_mse']:.3g}, Grad {w['label_grad']:.3g}, Conn "
                       f"{w['label_conn']:.3g}")
        if r.baseline and not r.predicted:
            out.append(f"{r.name}: alpha vs reference path (YUV round trip, not judged): max "
                       f"{r.baseline['max_abs']:.3g}, mean {r.baseline['mean_abs']:.3g}")
    return out


def to_dict(report: VerifyReport) -> dict:
    floor = report.floor
    return {
        "matteconv_version": __version__,
        "golden": report.golden,
        "size": list(report.size),
        "inputs": report.inputs,
        "ok": report.ok,
        "required": report.required,
        "noise_floor": {k: floor.worst[k] for k in ("max_abs", "mean_abs")} if floor else None,
        "stages": [{"name": r.name, "label": r.label or r.name, "artifact": r.artifact, "status": r.status, "reason": r.reason,
                    "tolerance": r.tolerance, "worst": r.worst, "worst_input": r.worst_input,
                    "baseline": r.baseline, "inputs": r.inputs, "predicted": r.predicted, "per_input": r.per_input, "seconds": round(r.seconds, 3)}
                   for r in report.results],
    }


def write_json(report: VerifyReport, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(to_dict(report), indent=2) + "\n")


def write_junit(report: VerifyReport, path: str | Path) -> None:
    """One testsuite, one testcase per stage; a skipped stage is <skipped> (a failure when required)."""
    suite = ET.Element("testsuite", name="matteconv.verify", tests=str(len(report.results)))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname="matteconv.verify", name=r.name, time=f"{r.seconds:.3f}")
        if r.status == "failed" or (r.status == "skipped" and r.name in report.required):
            ET.SubElement(case, "failure", message=r.reason or "required stage skipped")
            counts["failures"] += 1
        elif r.status == "error":
            ET.SubElement(case, "error", message=r.reason)
            counts["errors"] += 1
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=r.reason)
            counts["skipped"] += 1
        if r.worst:
            ET.SubElement(case, "system-out").text = json_text(r.worst)
    for k, v in counts.items():
        suite.set(k, str(v))
    with atomic_path(path) as tmp:
        ET.ElementTree(suite).write(tmp, encoding="utf-8", xml_declaration=True)
