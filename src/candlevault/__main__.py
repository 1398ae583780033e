"""Run the command line as `python -m candlevault`, the same as the `candlevault` script."""

from candlevault.cli.main import app

app(prog_name="candlevault")
