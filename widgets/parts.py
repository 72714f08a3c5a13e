"""Small parts the tabs share.

:class:`Disclosure` is the app's one way to show a titled section that opens and closes.  Use
it instead of a collapsible ``pn.Card``: Panel 1.9's Card hides a collapsed card's children by
setting their models' ``visible`` to false in the browser only, so a card drawn again (the
app's tabs were dynamic, ``pn.Tabs(dynamic=True)``, and drew a tab again at every visit) takes
that false for its children's own setting and never shows them again (the arrow flips, the
card stays ~37 px tall).  Here the section's own toggle sets its body's ``visible`` in Python, which
every drawing of it follows.

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
