"""Pure: the snapshot model and its JSON format, diff, references, the Target protocol."""
