"""The one exception type for mistakes in what a user hands us (files, configs, flags).

The command line turns it into a single line on stderr and exit status 2; anything else is a bug.
"""


class UserError(Exception):
    """A problem with the user's input; the message names the file, line or config key."""


class NoOutput(UserError):
    """A model gave no output for an input (its search kept no hypothesis: NaN scores). The
    command line reports it as any UserError; the server must answer 4xx, never 200 with no outputs."""


def where(path, line: int | None = None) -> str:
    """``path`` or ``path:line``, the prefix every UserError message starts with."""
    return f"{path}:{line}" if line is not None else str(path)
