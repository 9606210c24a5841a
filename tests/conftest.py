"""Shared test configuration: pytest's own ``pytester`` runs inner pytest sessions (the
tcplab plugin's tests)."""

pytest_plugins = ["pytester"]
