"""``python -m tcplab``: the same as the ``tcplab`` command."""

from tcplab._entry import main

main()
