"""The one exception type for bad user input.

Everything a user can get wrong (an unknown name, a size that is not positive, two options that clash) raises
`ConfigError` with a single-line message. The CLI prints that line and exits with status 2; library users get
an ordinary `ValueError` subclass they can catch.
"""


#: Applied to every message (`ablations.config.secrets` sets it when imported): a password that an override or
#: a config value carries never reaches an error message, for the CLI and for library users alike.
redact = None


class ConfigError(ValueError):
    """Invalid configuration: the message is one line and says what the valid choices are."""

    def __init__(self, *args):
        if redact is not None:
            args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        super().__init__(*args)
