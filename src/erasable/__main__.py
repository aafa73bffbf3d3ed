"""``python -m erasable``: the command line (see :mod:`erasable.cli`)."""

from erasable.cli import app

app(prog_name="erasable")
