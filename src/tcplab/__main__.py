"""``python -m tcplab``: the same as the ``tcplab`` command."""

from tcplab.cli import entry

entry()
