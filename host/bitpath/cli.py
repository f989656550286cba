"""The `bitpath` command line. Each area registers its own sub-commands."""

from __future__ import annotations

import typer

from bitpath import __version__, cli_bench, cli_core, cli_device, cli_select, cli_train

app = typer.Typer(
    name="bitpath",
    help="Input-aware dynamic mixed-precision inference on microcontrollers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bitpath {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Input-aware dynamic mixed-precision inference on microcontrollers."""


for _module in (cli_core, cli_train, cli_device, cli_bench, cli_select):
    _module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
