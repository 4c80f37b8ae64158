"""``python -m inboxd``."""

from inboxd.cli import main

if __name__ == "__main__":
    main()
