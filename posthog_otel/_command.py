"""What the command-line commands share: the error that ends one.

Its own module so the commands' modules (``_flags.cli``, the gateway's) need not import the
command line that imports them.
"""


class CommandError(Exception):
    """Ends a command with this message (what is wrong, what to do) and exit status 1."""
