"""Pure: the interrupt/exception event chain, diagnosis rules, the report as data."""
