"""The one exception type for bad user input.

Everything a user can get wrong (an unknown name, a size that is not positive, two options that clash) raises
`ConfigError` with a single-line message. The CLI prints that line and exits with status 2; library users get
an ordinary `ValueError` subclass they can catch.
"""


class ConfigError(ValueError):
    """Invalid configuration: the message is one line and says what the valid choices are."""
