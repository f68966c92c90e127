#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as error:
        # The embedded SQLite file waits EXPLAINSTUDY_SQLITE_TIMEOUT seconds for another
        # writer; past that a command says so in one line instead of a traceback.
        if "database is locked" not in str(error):
            raise
        sys.exit(
            "error: the database is busy (another process is writing to it); "
            "run the command again when that process has finished"
        )


if __name__ == "__main__":
    main()
