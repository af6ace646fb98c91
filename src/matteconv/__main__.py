"""`python -m matteconv` runs the CLI."""
from .cli import app

app(prog_name="matteconv")
