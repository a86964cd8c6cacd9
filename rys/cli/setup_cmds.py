"""Commands of this area (placeholder until the area lands)."""

import click


def register(cli: click.Group) -> None:
    pass
