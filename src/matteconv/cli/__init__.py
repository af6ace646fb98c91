"""Thin typer layer. Each command group lives in its own module and registers itself on `app`;
the work is done by the importable library. Every MatteconvError becomes one line and exit code 2."""
from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Optional

os.environ.setdefault("GLOG_minloglevel", "2")  # pycaffe's glog chatter

import typer
from rich.console import Console

from .. import __version__
from ..errors import MatteconvError
from ..proc import Terminated, stop_signals_raise

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="MODNet portrait matting: checkpoint -> ONNX / Caffe -> Ascend .om, verified at every hop.")
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit non-zero."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def friendly(fn):
    """Turn library errors (and bad values) into one-line messages instead of tracebacks. Ctrl-C and SIGTERM
    raise Terminated, so every temporary is removed and every child process group ended on the way out;
    the exit code is then 128 + the signal, as a shell expects."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with stop_signals_raise():
                return fn(*args, **kwargs)
        except (MatteconvError, ValueError, FileNotFoundError) as e:
            fail(str(e))
        except Terminated as e:
            fail(f"interrupted ({e}): stopped, nothing partial written", code=e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted (SIGINT): stopped, nothing partial written", code=130)

    return wrapper


def backbone_copy_option(fn):
    """Give a command that loads checkpoints the shared `--backbone-copy backbone|lr_branch` option: which copy
    of MODNet's shared backbone to use when a checkpoint's two copies differ (model.checkpoint
    .resolve_backbone_copies refuses such a file otherwise). Put it under @friendly."""
    sig = inspect.signature(fn)
    option = inspect.Parameter(
        "backbone_copy", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
        default=typer.Option(None, "--backbone-copy", metavar="backbone|lr_branch",
                             help="When a checkpoint's backbone.* and lr_branch.backbone.* copies differ, use this "
                                  "one (the official code uses lr_branch)."))

    @functools.wraps(fn)
    def wrapper(*args, backbone_copy: Optional[str] = None, **kwargs):
        from ..model.checkpoint import backbone_copy_choice

        with backbone_copy_choice(backbone_copy):
            return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), option])
    return wrapper


def _version(value: bool):
    if value:
        console.print(f"matteconv {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    pass


def _register_all() -> None:
    from . import doctor_cmd, export_cmd, golden_cmd, verify_cmd  # noqa: F401  (each registers on app)

    for optional in ("caffe_cmd", "aipp_cmd", "om_cmd", "matte_cmd", "compare_cmd", "rules_cmd", "train_cmd",
                     "deploy_cmd", "quantize_cmd", "import_cmd"):  # each issue adds one
        try:
            __import__(f"{__name__}.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{optional}":
                raise


_register_all()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
