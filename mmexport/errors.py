"""Errors that the CLI turns into one clear line and an exit code."""


class MmexportError(Exception):
    """A failure the user can act on: the message says what went wrong and what to do."""

    exit_code = 1


class UsageError(MmexportError):
    """The command was asked for something that cannot exist (unknown name, bad shape...)."""

    exit_code = 2


class WeightsError(MmexportError):
    """A checkpoint could not be read or does not fit the connector."""


class ParityError(MmexportError):
    """An artifact's outputs differ from the reference by more than the tolerance."""


class InputError(UsageError):
    """A request that does not fit the artifact's inputs (the runtime, servers and derivations raise it)."""
