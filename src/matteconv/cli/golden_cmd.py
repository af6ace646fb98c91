"""`matteconv golden checkpoint|make`: the reference checkpoint and golden alpha sets."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app, backbone_copy_option, console, friendly
from ..preprocess import parse_size

golden_app = typer.Typer(no_args_is_help=True, help="Reference checkpoint and golden alpha mattes.")
app.add_typer(golden_app, name="golden")


@golden_app.command("checkpoint")
@friendly
def checkpoint(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the checkpoint (.pt or .safetensors)."),
    in_channels: int = typer.Option(3, "--in-channels", help="3, or 4 for the temporal model."),
    seed: int = typer.Option(None, "--seed", help="Build the RANDOM reference from this seed instead of the "
                             "trained one (tests of conversion only: it amplifies fp16 rounding ~600x)."),
):
    """Write a reference checkpoint: the trained one (default) or a random one, in the released checkpoints'
    layout (`module.` keys, backbone twice)."""
    from ..reference import reference_model, save_reference

    with console.status("writing the reference checkpoint..."):
        sha = save_reference(reference_model(in_channels, seed), output)
    kind = "trained" if seed is None else f"random, seed={seed}"
    console.print(f"wrote {output} (in_channels={in_channels}, {kind}, weights sha256 {sha[:16]})")


@golden_app.command("make")
@friendly
@backbone_copy_option
def make(
    output: Path = typer.Option(..., "-o", "--output", help="Golden set folder."),
    ckpt: Path = typer.Option(None, "--ckpt", help="Checkpoint (default: the reference checkpoint)."),
    images: Path = typer.Option(None, "--images", help="Folder of images (a clip, in name order, for 4 channels)."),
    in_channels: int = typer.Option(3, "--in-channels", help="Reference checkpoint only: 3 or 4."),
    seed: int = typer.Option(None, "--seed", help="Reference only: the random reference of this seed."),
    size: str = typer.Option(None, "--size", help="Model size N or HxW (default 512 for photos, 320 for clips)."),
    policy: str = typer.Option("device", "--policy", help="Resize policy: device or official (fixed size)."),
):
    """Write inputs, float64 golden alphas and manifest.json."""
    from ..verify.golden import make_set

    with console.status("golden alphas in float64...") as status:
        gset = make_set(output, ckpt, images, in_channels, seed, parse_size(size) if size else None, policy,
                        progress=lambda name: status.update(f"golden alpha in float64 for {name}..."))
    console.print(f"wrote {len(gset.items)} golden alphas to {gset.root} ({gset.size[0]}x{gset.size[1]}, "
                  f"{gset.in_channels}-channel)")


@golden_app.command("hard")
@friendly
def hard(
    output: Path = typer.Option(Path("golden/hard"), "-o", "--output", help="Folder for stills/ and clip/."),
    size: str = typer.Option(None, "--size", help="Model size N or HxW (default 288x512)."),
):
    """Write golden/hard: flat, dark, bright, low-contrast and empty camera frames (3-channel reference) and an
    enter-stay-leave-empty clip (4-channel reference), made deterministically from scikit-image photos."""
    from ..verify.golden import make_hard

    with console.status("golden alphas in float64...") as status:
        sets = make_hard(output, parse_size(size) if size else None,
                         progress=lambda name: status.update(f"golden alpha in float64 for {name}..."))
    for gset in sets:
        console.print(f"wrote {len(gset.items)} golden alphas to {gset.root} ({gset.size[0]}x{gset.size[1]}, "
                      f"{gset.in_channels}-channel)")
