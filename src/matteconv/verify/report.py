"""Render a VerifyReport: a rich table for people, JSON and JUnit XML for machines."""
from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from rich.table import Table

from .. import __version__
from ..fileio import atomic_path
from .run import METRIC_KEYS, VerifyReport

HEADERS = {"max_abs": "max|d|", "mean_abs": "mean|d|", "sad": "SAD", "mse": "MSE", "grad": "Grad", "conn": "Conn"}
STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow", "error": "bold red"}


def table(report: VerifyReport) -> Table:
    floor = report.floor
    t = Table(title=f"verify {report.golden} ({len(report.inputs)} inputs, {report.size[0]}x{report.size[1]}; "
                    f"errors vs float64 golden, worst input)", title_justify="left")
    t.add_column("stage")
    t.add_column("status")
    for k in METRIC_KEYS:
        t.add_column(HEADERS[k], justify="right")
    t.add_column("worst input")
    t.add_column("tolerance max/mean", justify="right")
    t.add_column("x floor (max)", justify="right")
    for r in report.results:
        status = f"[{STYLE[r.status]}]{r.status}[/]"
        if r.status in ("skipped", "error"):
            label = "skipped" if r.status == "skipped" else "error"
            t.add_row(r.name, f"[{STYLE[r.status]}]{label}: {r.reason}[/]", *[""] * (len(METRIC_KEYS) + 3))
            continue
        ratio = f"{r.worst['max_abs'] / floor.worst['max_abs']:.2f}" if floor and floor.worst["max_abs"] else ""
        tol = f"{r.tolerance.get('max_abs', 0):g} / {r.tolerance.get('mean_abs', 0):g}"
        t.add_row(r.name, status + (f" {r.reason}" if r.reason else ""), *[f"{r.worst[k]:.3g}" for k in METRIC_KEYS],
                  r.worst_input, tol, ratio)
        if r.baseline:
            t.add_row(f"  {r.name} vs baseline", "", *[f"{r.baseline[k]:.3g}" for k in METRIC_KEYS], "", "", "")
    if floor:
        t.caption = (f"noise floor: PyTorch fp32 vs float64 = max {floor.worst['max_abs']:.3g}, "
                     f"mean {floor.worst['mean_abs']:.3g}")
    return t


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
        "stages": [{"name": r.name, "artifact": r.artifact, "status": r.status, "reason": r.reason,
                    "tolerance": r.tolerance, "worst": r.worst, "worst_input": r.worst_input,
                    "baseline": r.baseline, "per_input": r.per_input, "seconds": round(r.seconds, 3)}
                   for r in report.results],
    }


def write_json(report: VerifyReport, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_dict(report), indent=2) + "\n")


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
            ET.SubElement(case, "system-out").text = json.dumps(r.worst)
    for k, v in counts.items():
        suite.set(k, str(v))
    with atomic_path(path) as tmp:
        ET.ElementTree(suite).write(tmp, encoding="utf-8", xml_declaration=True)
