"""The one exception type for mistakes in what a user hands us (files, configs, flags).

The command line turns it into a single line on stderr and exit status 2; anything else is a bug.
"""


class UserError(Exception):
    """A problem with the user's input; the message names the file, line or config key."""


def where(path, line: int | None = None) -> str:
    """``path`` or ``path:line``, the prefix every UserError message starts with."""
    return f"{path}:{line}" if line is not None else str(path)
