"""``python -m tagger`` is the ``tagger`` command."""

from __future__ import annotations

from tagger.startup import guard_signals


def main() -> None:
    """The ``tagger`` command: signals are guarded before the CLI's imports, which take a moment."""
    guard_signals()
    from tagger.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
