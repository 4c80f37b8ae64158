"""``python -m inboxd``."""

from inboxd.cli.main import main

if __name__ == "__main__":
    main()
