"""``python -m tagger`` is the ``tagger`` command."""

from tagger.cli import main

if __name__ == "__main__":
    main()
