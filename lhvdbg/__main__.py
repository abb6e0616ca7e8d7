"""``python -m lhvdbg``."""

from lhvdbg.cli import main

raise SystemExit(main())
