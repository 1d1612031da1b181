"""Errors that npuc reports to its users.

Every mistake in a user's input (a model, a text IR file, a target file, a command line)
is raised as an :class:`NpucError` whose message is one sentence that says what is wrong
and where. The command line prints it on one line and exits with code 2; tracebacks are
reserved for bugs in npuc itself.
"""


class NpucError(Exception):
    """A problem with the user's input, explained in one line."""


class ModelError(NpucError):
    """A model file that cannot be read or that breaks the ONNX rules."""


class UnsupportedError(NpucError):
    """Something valid that npuc does not support (yet): an operator, a type, an attribute."""


class ParseError(NpucError):
    """A syntax error in a text IR file, with its line and column."""


class VerifyError(NpucError):
    """An IR graph that breaks an invariant; the message names the node."""


class InputError(NpucError):
    """Inputs given to a model that do not match its signature."""
