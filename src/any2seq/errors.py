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


def preview(value, width: int = 60) -> str:
    """A short ``repr`` of ``value`` for an error message: nested containers cut at a few items and
    levels before they are rendered (a YAML alias bomb has billions), the text cut at ``width``."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict, short.maxset = 3, 4, 4, 4, 4
    short.maxstring = short.maxother = short.maxlong = width
    try:
        text = " ".join(short.repr(value).split())
    except ValueError:  # an integer of more than 4,300 digits
        text = f"<a number of {value.bit_length():,} bits>" if isinstance(value, int) else f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."


def clip(text: str, width: int = 60) -> str:
    """``text`` on one line, cut at ``width`` characters: a flag or key a user typed, quoted back."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."
