"""`matteconv import MODEL.onnx -o CKPT`: a MODNet ONNX export back into a checkpoint (library: model.onnx_import)."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from . import app, console, friendly


@app.command("import")
@friendly
def import_(
    model: Path = typer.Argument(..., help="A MODNet ONNX export (the official modnet.onnx, or ours)."),
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint to write: .safetensors, or .pt/.pth/.ckpt "
                                                           "(torch.save), by the suffix."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Rebuild the official-layout checkpoint from a MODNet ONNX, matched by structure; written only when its
    PyTorch matte equals the ONNX's on a real photo (export's parity rule). The semantic and detail heads, which no
    export holds, are written as zeros and named."""
    from ..fileio import check_output_file, refuse_overwrite
    from ..model.onnx_import import import_onnx, save_imported
    from ..reference import check_checkpoint_name

    check_checkpoint_name(output)
    check_output_file(output)
    refuse_overwrite([output], [model])
    with console.status(f"importing {model}..."):
        res = import_onnx(model)
        sha = save_imported(res, model, output)
    info = {"output": str(output), "source": str(model), "opset": res.opset, "producer": res.producer,
            "in_channels": res.in_channels, "hr_channels": res.hr_channels, "split_inputs": res.split_inputs,
            "convolutions": res.convs, "conv_parts_joined": res.joined_parts, "weights_sha256": sha,
            "untrained": res.untrained, "parity_size": list(res.parity_size),
            "max_abs_diff_vs_onnx": res.max_abs, "mean_abs_diff_vs_onnx": res.mean_abs,
            "parity_tolerance": res.tolerance}
    if as_json:
        console.print_json(json.dumps(info))
        return
    t = Table(title=f"import {model.name}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    heads = sorted({k.rsplit(".layers", 1)[0].rsplit(".", 1)[0] if ".conv_hr." in k else k.split(".layers")[0]
                    for k in res.untrained})
    for row in (("file", str(output)), ("source", f"{model} (opset {res.opset}, {res.producer or 'producer ?'})"),
                ("architecture", f"in_channels {res.in_channels}, hr_channels {res.hr_channels}"
                 + (", split inputs" if res.split_inputs else "")),
                ("convolutions matched", f"{res.convs}" + (f" ({res.joined_parts} split parts joined)"
                                                           if res.joined_parts else "")),
                ("untrained (zeros)", f"{', '.join(heads)}: {len(res.untrained)} tensors, not in any export"),
                ("max |d alpha| vs ONNX", f"{res.max_abs:.3g} at {res.parity_size[0]}x{res.parity_size[1]} "
                 f"(astronaut; tolerance {res.tolerance:.3g})"),
                ("weights sha256", sha[:16])):
        t.add_row(*row)
    console.print(t)
