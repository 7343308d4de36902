"""The one exception type that carries a user-facing message.

Anything raised as :class:`LingualiftError` is a problem with the user's input
or environment: the CLI prints its message (one sentence saying what to do) and
exits with code 2, without a traceback. Everything else is a bug.
"""


class LingualiftError(Exception):
    """A clear, actionable error about input, configuration or environment."""


def require(condition: object, message: str) -> None:
    """Raise :class:`LingualiftError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise LingualiftError(message)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
