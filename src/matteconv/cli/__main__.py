"""`python -m matteconv.cli` runs the CLI (the tests use it so they need no PATH)."""
from . import app

app(prog_name="matteconv")
