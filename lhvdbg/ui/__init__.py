"""Rendering (rich) and the interactive shell (prompt_toolkit): the only layer that imports them."""
