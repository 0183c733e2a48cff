"""Credentials that cannot leak by accident: through a repr, an f-string or a log line."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


class Secret:
    """A credential whose only way out is :meth:`reveal`, called where the request is built.

    ``repr()``, ``str()`` and formatting all print a mask, so a settings dataclass holding
    secrets can be logged or shown in a traceback without exposing them.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("a secret cannot be empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable, so it cannot end up in a cache or a queue")


class Redactor:
    """Masks known secret values in text that came from outside (error messages, bodies).

    Our own log lines never contain secrets by construction; this is the second line of
    defence for text we do not control, such as a server echoing the request back.
    """

    def __init__(self, secrets: Iterable[Secret | None]) -> None:
        values = {s.reveal() for s in secrets if s is not None}
        # Longest first, so a secret containing another is masked whole.
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text
