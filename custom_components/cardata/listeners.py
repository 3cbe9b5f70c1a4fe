"""Callbacks that others subscribe to: the one registry the integration's objects share."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.core import CALLBACK_TYPE


class Listeners[*Args]:
    """Subscribers to one kind of news, called in the order they subscribed."""

    def __init__(self) -> None:
        """Start with nobody listening."""
        self._listeners: list[Callable[[*Args], None]] = []

    def add(self, listener: Callable[[*Args], None]) -> CALLBACK_TYPE:
        """Subscribe `listener`; the returned function unsubscribes it (twice is harmless)."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def notify(self, *args: *Args) -> None:
        """Call every listener; one that unsubscribes meanwhile is still called this time."""
        for listener in list(self._listeners):
            listener(*args)

    def clear(self) -> None:
        """Unsubscribe everyone: the owner is shutting down."""
        self._listeners.clear()
