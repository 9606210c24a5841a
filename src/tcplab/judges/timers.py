"""Judges of ... (filled in)."""

from __future__ import annotations
