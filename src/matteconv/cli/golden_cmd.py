"""`matteconv golden checkpoint|make`: the reference checkpoint and golden alpha sets."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app, backbone_copy_option, console, friendly
from ..errors import MatteconvError
from ..preprocess import parse_size

# Peak memory of `golden make` / `golden hard` grows with the pixels: the float64 model keeps its activations.
# Measured (process peak RSS, 2 threads, 2 images): 0.65 GB at 256x256, 3.9 GB at 1024, 13.8 GB at 2048, so about
# BASE + PER_PIXEL bytes (2048: 13.9 GB; 4096: 54 GB). Refused up front when it cannot fit, as `export` does.
GOLDEN_BASE_BYTES = 0.45e9
GOLDEN_BYTES_PER_PIXEL = 3200.0


def check_golden_memory(hw: tuple[int, int]) -> None:
    from ..export.memory import require_memory

    require_memory(hw, GOLDEN_BASE_BYTES, GOLDEN_BYTES_PER_PIXEL, "golden alphas in float64 need",
                   "use a smaller size (the size the model runs at on the device: 512 or 384 is typical)")


def check_output_dir(output: Path) -> None:
    """An output folder: its parent is writable and it is not an existing file."""
    from ..fileio import check_output_folder

    check_output_folder(output)
    if output.exists() and not output.is_dir():
        raise MatteconvError(f"{output}: exists and is a file, expected a folder")


golden_app = typer.Typer(no_args_is_help=True, help="Reference checkpoint and golden alpha mattes.")
app.add_typer(golden_app, name="golden")


@golden_app.command("checkpoint")
@friendly
def checkpoint(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the checkpoint (.pt, .pth, .ckpt or "
                                ".safetensors)."),
    in_channels: int = typer.Option(3, "--in-channels", help="3, or 4 for the temporal model."),
    seed: int = typer.Option(None, "--seed", help="Build the RANDOM reference from this seed instead of the "
                             "trained one (tests of conversion only: it amplifies fp16 rounding ~600x)."),
):
    """Write a reference checkpoint: the trained one (default) or a random one, in the released checkpoints'
    layout (`module.` keys, backbone twice)."""
    from ..fileio import check_output_file
    from ..reference import check_checkpoint_name, reference_model, save_reference

    check_checkpoint_name(output)  # before the (random: ~30 s) reference is built
    check_output_file(output)
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
    from ..fileio import require_folder
    from ..verify.golden import make_set

    hw = parse_size(size) if size else None
    check_golden_memory(hw or (512, 512))
    if images is not None:
        require_folder(images)
    with console.status("golden alphas in float64...") as status:
        gset = make_set(output, ckpt, images, in_channels, seed, hw, policy,
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

    hw = parse_size(size) if size else None
    if hw is not None:
        check_golden_memory(hw)
    check_output_dir(output)
    with console.status("golden alphas in float64...") as status:
        sets = make_hard(output, hw,
                         progress=lambda name: status.update(f"golden alpha in float64 for {name}..."))
    for gset in sets:
        console.print(f"wrote {len(gset.items)} golden alphas to {gset.root} ({gset.size[0]}x{gset.size[1]}, "
                      f"{gset.in_channels}-channel)")


@golden_app.command("real")
@friendly
def real(
    output: Path = typer.Option(Path("golden/real"), "-o", "--output", help="Folder for official/, 384/ and 320/."),
):
    """Write golden/real: real photos of people (scikit-image's astronaut and camera) and composites of their
    cut-outs over real photos, with float64 mattes of the official MODNet (installed by `make install`) at the
    official policy (512x512) and at 384 and 320."""
    from ..verify.golden_real import make_real

    check_output_dir(output)
    with console.status("golden alphas of the official model in float64...") as status:
        sets = make_real(output, progress=lambda name: status.update(f"golden alpha in float64 for {name}..."))
    for gset in sets:
        console.print(f"wrote {len(gset.items)} golden alphas to {gset.root} ({gset.size[0]}x{gset.size[1]}, "
                      f"{gset.manifest['policy']} policy)")
