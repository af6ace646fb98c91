"""`matteconv deploy`: generate the device app for an .om, and/or run a generated app on the host."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import MatteconvError
from . import app, console, fail, friendly

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".h264", ".zip")


def remove_generated(result, existed_empty: bool) -> None:
    """Take back what generate_app wrote: the app folder (left as the empty folder it was, if it was one) and the
    skill archive."""
    from ..fileio import remove_path

    remove_path(Path(result.app))
    if existed_empty:
        Path(result.app).mkdir()
    if result.archive is not None:
        remove_path(Path(result.archive))


@app.command()
@friendly
def deploy(
    target: Path = typer.Argument(..., help="MODEL.om (with MODEL.build.json beside it, from `matteconv om`) to "
                                            "generate an app, or a generated APP folder to --simulate."),
    runtime: str = typer.Option("hilens", "--runtime", "-r", help="hilens (HiLens Kit skill), acl (pyACL) or "
                                                                  "ais_bench."),
    output: Path = typer.Option(..., "--output", "-o", help="With MODEL.om: the app folder to write (HiLens also "
                                                            "gets APP.zip, the skill archive). With an APP folder "
                                                            "and --simulate: the simulated output (.mp4/.avi or "
                                                            "a new folder of PNG frames)."),
    simulate_input: Path = typer.Option(None, "--simulate", help="Run the generated app unchanged on this video "
                                                                 "or folder of images, against stand-in device "
                                                                 "modules."),
    sim_output: Path = typer.Option(None, "--sim-output", help="With MODEL.om and --simulate: where the "
                                                               "simulated output goes."),
    background: str = typer.Option("#2e8b57", "--background", "-b", help="#RRGGBB, blur, or an image file "
                                                                         "(copied into the app)."),
    mirror: bool = typer.Option(False, "--mirror", help="Mirror frames before the model (selfie camera)."),
    policy: str = typer.Option("auto", "--policy", help="device (centre crop to the model's aspect), letterbox "
                               "(whole frame, grey 128 bands) or auto: letterbox when a crop would drop more than "
                               "10% of the frame (decided on the first frame, as `matteconv matte`)."),
    view: str = typer.Option("frame", "--view", help="frame: the whole frame composited (as `matteconv matte`); "
                                                     "crop: the seed demo's centre crop at --display-size."),
    display_size: int = typer.Option(640, "--display-size", help="Width of the crop view."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="Show input | result."),
    no_temporal: bool = typer.Option(False, "--no-temporal", help="4-channel models: always feed zeros."),
    check_value: str = typer.Option("matteconv", "--check-value", help="HiLens: the skill's check value (校验值)."),
    frames: int = typer.Option(None, "--frames", min=1, help="Simulation: stop after this many frames."),
    report_every: int = typer.Option(None, "--report-every", min=1, help="Print stage times every N frames."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Write a self-contained background-replacement app for the board (numpy + OpenCV, Python 3.7), and run it
    on the host against stand-in hilens / acl / ais_bench modules before it reaches a device."""
    from ..deploy import DeployOptions, generate_app, simulate
    from ..deploy.generate import check_background
    from ..deploy.simulate import check_simulation_input, check_simulation_paths

    echo = None if as_json else (lambda line: console.print(line, highlight=False, markup=False))
    summary: dict = {}
    # every combination is checked before anything is written
    if target.is_dir():
        if simulate_input is None:
            fail(f"{target}: a folder is simulated: give --simulate INPUT (and -o OUTPUT)")
        if sim_output is not None:
            fail(f"{target}: with an APP folder, -o is the simulated output; --sim-output is for MODEL.om")
        check_simulation_paths(simulate_input, output)  # simulate() checks the input against the app's config
    else:
        if simulate_input is not None and sim_output is None:
            fail("--simulate with MODEL.om needs --sim-output OUTPUT (-o is the app folder)")
        if sim_output is not None and simulate_input is None:
            fail("--sim-output needs --simulate INPUT")
        if output.suffix.lower() in VIDEO_SUFFIXES:
            fail(f"{output}: -o is the app folder to write; a name ending in {output.suffix} looks like a video "
                 "(the simulated output goes to --sim-output)")
        if simulate_input is not None:
            check_simulation_paths(simulate_input, sim_output)
            app_path, sim_path = output.resolve(), sim_output.resolve()
            if sim_path == app_path or app_path in sim_path.parents:
                fail(f"{sim_output}: the simulated output cannot be the app folder {output} or inside it")
            check_simulation_input(simulate_input, runtime, view, side_by_side)
        check_background(background)
    if target.is_dir():
        app_dir, sim_out = target, output
    else:
        opts = DeployOptions(runtime=runtime, background=background, mirror=mirror, policy=policy, view=view,
                             display_size=display_size, side_by_side=side_by_side, temporal=not no_temporal,
                             check_value=check_value, **({"report_every": report_every} if report_every else {}))
        existed_empty = output.is_dir()
        result = generate_app(target, output, opts)
        summary["app"] = {"folder": str(result.app), "archive": str(result.archive) if result.archive else None,
                          "files": result.files, "config": result.config,
                          "layout_check_lsb": round(result.layout_error_lsb, 3)}
        if not as_json:
            console.print(f"wrote {result.app} ({runtime}, {len(result.files)} files"
                          + (f"; skill archive {result.archive}" if result.archive else "") + ")", highlight=False)
            console.print(f"input layout {result.config['input_layout']} checked against the .om's AIPP: test card "
                          f"within {result.layout_error_lsb:.1f} LSB", highlight=False)
        app_dir, sim_out = result.app, sim_output
    if simulate_input is not None:
        try:
            sim = simulate(app_dir, simulate_input, sim_out, frames=frames, report_every=report_every, echo=echo)
        except BaseException as e:
            if target.is_dir():
                raise
            # one run, one result: an app whose simulation failed is not left behind (README: deploy)
            remove_generated(result, existed_empty)
            if isinstance(e, MatteconvError):
                raise MatteconvError(f"{e} (nothing of this run is kept: the app {output} was removed)") from None
            raise
        summary["simulation"] = {"output": str(sim.output), "runtime": sim.runtime, "stats": sim.stats,
                                 "device": sim.device}
        if not as_json:
            console.print(f"simulated {sim.stats.get('frames', 0)} frames on stand-in {sim.runtime} -> {sim.output}",
                          highlight=False)
    if as_json:
        print(json.dumps(summary, indent=1))
