"""Judges of the kernel-documentation claims (filled in)."""

from __future__ import annotations
