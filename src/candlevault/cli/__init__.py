"""The `candlevault` command line: thin typer commands over the settings and the services."""
