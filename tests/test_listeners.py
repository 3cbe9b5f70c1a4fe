"""The shared listener registry behind the budget, tokens, stream and image news."""

from __future__ import annotations

from custom_components.cardata.listeners import Listeners


def test_listeners_hear_news_in_order_until_they_leave() -> None:
    listeners: Listeners[int] = Listeners()
    heard: list[tuple[str, int]] = []
    remove_first = listeners.add(lambda value: heard.append(("first", value)))
    listeners.add(lambda value: heard.append(("second", value)))

    listeners.notify(1)
    remove_first()
    remove_first()  # a second unsubscribe is harmless
    listeners.notify(2)

    assert heard == [("first", 1), ("second", 1), ("second", 2)]


def test_a_listener_leaving_during_news_still_hears_it_once() -> None:
    listeners: Listeners[()] = Listeners()
    heard: list[str] = []

    def leave() -> None:
        heard.append("leaving")
        remove()

    remove = listeners.add(leave)
    listeners.add(lambda: heard.append("staying"))
    listeners.notify()
    listeners.notify()
    assert heard == ["leaving", "staying", "staying"]


def test_clear_unsubscribes_everyone() -> None:
    listeners: Listeners[()] = Listeners()
    heard: list[str] = []
    listeners.add(lambda: heard.append("news"))
    listeners.clear()
    listeners.notify()
    assert heard == []
