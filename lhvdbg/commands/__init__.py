"""Thin commands, one module each, registered in one registry (see registry.py)."""
