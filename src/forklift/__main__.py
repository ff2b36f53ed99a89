"""``python -m forklift`` runs the command-line tool."""

from forklift.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
