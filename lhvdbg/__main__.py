"""``python -m lhvdbg``."""

try:
    from lhvdbg.cli import main
except KeyboardInterrupt:  # Ctrl-C while the entry module itself loads: still one line
    import sys

    print("lhvdbg: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
