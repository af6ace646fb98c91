"""Every matteconv command line a user reads (scripts/demo.sh, README.md and docs/**/*.md code blocks) parses
against the CLI as it is now: the subcommand exists, every option is one the command accepts, and the values fit
its arguments. An option renamed in the CLI but not in the docs fails here, where the user would read it, instead
of on a newcomer's first `make demo` (issue 37).

Parsing is click's own (`Command.make_context`, the step typer runs before calling a command), so nothing runs
and no file named in an example has to exist."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

try:  # typer 0.2x ships its own copy of click, and the commands it builds raise that copy's errors
    from typer._click.exceptions import UsageError
except ImportError:  # older typer builds on the click package
    from click.exceptions import UsageError

from matteconv.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHELL_VARS = re.compile(r"\$\{?(\w+)\}?")


def _commands():
    return typer.main.get_command(app)


def _join_continuations(text: str) -> list[tuple[int, str]]:
    """(first line number, logical line) with backslash-newline continuations joined."""
    out, buf, start = [], "", 0
    for i, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    return out


def _strip_comment(line: str) -> str:
    """The line without a trailing shell comment (a `#` outside quotes that starts a word)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        return shlex.join(list(lexer))
    except ValueError:
        return line


def demo_lines() -> list[tuple[str, list[str]]]:
    """Each `$MC ...` invocation in scripts/demo.sh, as (where, argv after the program name)."""
    text = (ROOT / "scripts" / "demo.sh").read_text()
    found = []
    for n, line in _join_continuations(text):
        words = shlex.split(_strip_comment(line.split("|")[0]))
        while words and re.fullmatch(r"\w+=.*", words[0]):  # leading VAR=value assignments
            words.pop(0)
        if words and words[0] in ("$MC", "matteconv"):
            found.append((f"scripts/demo.sh:{n}", words[1:]))
    return found


def doc_lines() -> list[tuple[str, list[str]]]:
    """Each command line starting with `matteconv ` inside a code block (fenced, or indented by 4 spaces) of
    README.md and docs/*.md."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if not path.is_file():
            continue
        fenced = False
        lines = path.read_text().splitlines()
        for n, raw in enumerate(lines, 1):
            if raw.lstrip().startswith("```"):
                fenced = not fenced
                continue
            code = fenced or raw.startswith("    ")
            line = raw.strip().removeprefix("$ ")
            if not code or not line.startswith("matteconv "):
                continue
            while line.endswith("\\") and n < len(lines):
                n += 1
                line = line[:-1] + " " + lines[n - 1].strip()
            found.append((f"{path.relative_to(ROOT)}:{n}", shlex.split(_strip_comment(line))[1:]))
    return found


def check_argv(argv: list[str]) -> None:
    """Raise UsageError (or a subclass) if `argv` would not parse as a matteconv command line."""
    group = _commands()
    cmd, name, args = group, "matteconv", list(argv)
    while hasattr(cmd, "list_commands"):  # a group (typer's TyperGroup, or click's Group)
        if args[:1] and args[0].startswith("-") or not args and cmd.invoke_without_command:
            # the group's own options (`matteconv aipp --input-format nv21 ...` runs aipp's callback)
            ctx = cmd.make_context(name, args, resilient_parsing=False)
            args = [*getattr(ctx, "protected_args", []), *ctx.args]
            ctx.close()
            if not args:
                return
        if not args:
            raise UsageError(f"{name}: no subcommand")
        sub = cmd.get_command(cmd.context_class(cmd), args[0])
        if sub is None:
            raise UsageError(f"no such command {args[0]!r} under {name!r}")
        cmd, name, args = sub, f"{name} {args[0]}", args[1:]
    args = [SHELL_VARS.sub(r"\1", a) for a in args]  # "$OUT/x.onnx" -> "OUT/x.onnx": any path will do
    ctx = cmd.make_context(name, args, resilient_parsing=False)
    ctx.close()


ALL = demo_lines() + doc_lines()


def test_examples_are_found():
    """The collector sees the demo's, README's and docs' commands (not zero: a broken collector would pass everything)."""
    where = {w.split(":")[0] for w, _ in ALL}
    assert "scripts/demo.sh" in where and "README.md" in where
    assert sum(w.startswith("scripts/demo.sh") for w, _ in ALL) >= 10
    assert sum(w.startswith("README.md") for w, _ in ALL) >= 10
    assert sum(w.startswith("docs/") for w, _ in ALL) >= 20


@pytest.mark.parametrize("where,argv", ALL, ids=[w for w, _ in ALL])
def test_example_parses(where, argv):
    try:
        check_argv(argv)
    except typer.Exit:
        pass  # an eager option such as --help or --version ended parsing: it exists
    except UsageError as e:
        pytest.fail(f"{where}: `matteconv {shlex.join(argv)}` no longer parses: {e.format_message()}")


def test_a_renamed_option_is_caught():
    """The check itself: a real demo line parses, the same line with one option renamed does not."""
    where, argv = next((w, a) for w, a in demo_lines() if a[:1] == ["export"] and "--size" in a)
    check_argv(argv)
    renamed = ["--resolution" if a == "--size" else a for a in argv]
    with pytest.raises(UsageError, match="--resolution"):
        check_argv(renamed)
    with pytest.raises(UsageError, match="no such command"):
        check_argv(["exprot", *argv[1:]])
    with pytest.raises(UsageError, match="--input-fromat"):  # a group's own options are checked too
        check_argv(["aipp", "--input-fromat", "nv21", "-o", "x.cfg"])
