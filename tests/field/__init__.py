"""The leak check on real third-party test suites (issue 12, item 6): ``nox -s plugin-field``.

Three suites nobody here wrote — trio, anyio and a socket-heavy part of aiohttp, each at a
pinned version, with its own test dependencies and tcplab, in a virtualenv of its own — run
without and with ``--tcplab-leaks``, alternating. Every test the check flags is classified
by measurement, not by reading: a probe plugin (``tcplab_field_probe``, injected with
``-p``) follows each flagged socket's inode after the flag, through every fixture teardown,
to the end of the session. Still open at the end: a real leak. Closed by a teardown or a
thread a moment later: a false alarm, and the probe says which one closed it.

Modules: ``suites`` (what is installed and run), ``prepare`` (sdists, virtualenvs),
``runs`` (the alternating runs), ``table`` (classification and the result table; pure),
``tcplab_field_probe`` (the pytest plugin, stdlib and pytest only).
"""
