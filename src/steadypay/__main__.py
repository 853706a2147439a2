"""`python -m steadypay` runs the CLI (how `steadypay up` starts its child processes)."""

from steadypay.cli.main import app

app()
