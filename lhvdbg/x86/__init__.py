"""Pure x86 knowledge: layouts, decoders, tables, checks, HMP parsers. Imports no backend."""
