"""Small parts the tabs share.

:class:`Disclosure` is the app's one way to show a titled section that opens and closes.  Use
it instead of a collapsible ``pn.Card``: Panel 1.9's Card hides a collapsed card's children by
setting their models' ``visible`` to false in the browser only, so a card drawn again (the
app's tabs were dynamic, ``pn.Tabs(dynamic=True)``, and drew a tab again at every visit) takes
that false for its children's own setting and never shows them again (the arrow flips, the
card stays ~37 px tall).  Here the section's own toggle sets its body's ``visible`` in Python, which
every drawing of it follows.

:func:`poll_every` runs a view's poll of its worker: a background callback of the session.
:func:`held` runs a button's action so that the page gets its changes as one message.

Widgets for browser tests (``css_classes``, from the ``css_class`` given): ``{css_class}-card``
the section, ``{css_class}-toggle`` its header, a toggle that opens and closes it.
"""

from __future__ import annotations

import panel as pn
import param

OPENED, CLOSED = "▾", "▸"  # the toggle's arrow


class Disclosure(pn.viewable.Viewer):
    """A titled section that opens and closes: a toggle over a body, in a Card that is not
    collapsible itself.  ``Disclosure("Chip profile", pane, css_class="wb-chip-profile")``."""

    opened = param.Boolean(default=False, doc="whether the body shows")

    def __init__(self, title: str, *objects, css_class: str, **params):
        super().__init__(**params)
        self.title = title
        self.toggle = pn.widgets.Toggle(
            value=self.opened,
            label=self._label(),
            color="light",
            css_classes=[f"{css_class}-toggle"],
        )
        self.body = pn.Column(*objects, visible=self.opened, sizing_mode="stretch_width")
        self.card = pn.Card(
            self.body,
            header=self.toggle,
            collapsible=False,
            sizing_mode="stretch_width",
            css_classes=[f"{css_class}-card"],
        )
        self.toggle.param.watch(lambda event: setattr(self, "opened", event.new), "value")

    def _label(self) -> str:
        return f"{OPENED if self.opened else CLOSED} {self.title}"

    @param.depends("opened", watch=True)
    def _on_opened(self) -> None:
        self.body.visible = self.opened
        self.toggle.param.update(value=self.opened, label=self._label())

    def __panel__(self):
        return self.card


def poll_every(callback, period_ms: int):
    """``pn.state.add_periodic_callback`` for a poll that runs as long as a run goes: a
    *background* callback.  Panel counts every other periodic callback in one busy list
    shared by all sessions, a list rebuilt and its watchers run twice per call; with a
    class's sessions each polling ten times a second that bookkeeping took a fifth of the
    server's busy time.  Stopped by ``.stop()``, and with its session like any other."""
    from panel.io.callbacks import PeriodicCallback

    poll = PeriodicCallback(callback=callback, period=period_ms, background=True)
    poll.start()
    if pn.state.curdoc is not None:
        pn.state._periodic.setdefault(pn.state.curdoc, []).append(poll)
    return poll


def held(action):
    """Run ``action`` (a button's: Start, Pause, Stop) with the session's document held.
    Panel holds the document for a changed property but not for a click, so the changes a
    click makes (the buttons, the status line) would reach the page as one message each."""
    with pn.io.hold():
        return action()
