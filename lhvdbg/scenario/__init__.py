"""Scenarios: declarative TOML files (and a Python API) that drive a machine and check it.

``loader`` reads and validates files, ``paths``/``assertions`` check field paths against
the facts built by ``facts``, ``runner`` executes steps on a live session.
"""
