"""`bitpath` sub-commands of the device area."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `bitpath` app."""
