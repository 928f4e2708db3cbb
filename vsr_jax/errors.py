"""Errors caused by the user's input (config, paths, files), reported as one line."""


class UserError(Exception):
    """Bad input: the command-line entry points print the message and exit non-zero."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work (unknown name, impossible size, ...)."""
