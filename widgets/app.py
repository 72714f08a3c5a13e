"""The web app: tabs Build, Data, Train, Compare and Hardware over one session's Workbench.

``create_app()`` builds everything for one session; ``serve()`` hands Panel the *function*, so
every browser session gets its own ``Workbench``, its own training and its own comparison
(an object served directly would be shared by every student).  Nothing per-user goes into
``pn.state.cache``.  When a session closes its runs are stopped.

Everything the page loads comes from this server (``inline`` resources): the app works with no
network, and a browser test holds that.
"""

from __future__ import annotations

import panel as pn

from .builder import NetworkBuilder
from .compare import CompareView
from .dashboard import TrainingDashboard
from .data import DataPicker
from .hardware import BackendPicker
from .scheduler import configure
from .state import Limits, Workbench
from .worker import sweep, warm_up

TABS = ("Build", "Data", "Train", "Compare", "Hardware")


def extension() -> None:
    """Load Panel's HoloViews/Bokeh support with every resource served locally (JupyterLab and
    ``panel serve`` alike): no request leaves the machine."""
    pn.extension("tabulator", inline=True, notifications=False)
    pn.config.inline = True
    _keep_stylesheets_local()


def _keep_stylesheets_local() -> None:
    """Work around Panel 1.9's CDN fallback for stylesheets.  A pane updated while it is out
    of the document (the dashboard's status line while another tab is open: the tabs are
    dynamic) has its properties computed for document ``None``, and for ``None`` Panel points
    the session's shared stylesheets (loading.css, markdown.css, the theme's default.css and
    native.css) at cdn.holoviz.org: every view then fetched them from the internet (27-31
    failed requests per session offline).  The document of the callback running is the
    right one; Panel passes it when the pane is shown."""
    from panel.io.state import state
    from panel.reactive import Reactive
    from panel.theme.base import Design

    if getattr(Reactive, "_workbench_local_css", False):
        return
    get_properties = Reactive._get_properties
    apply_params = Design._apply_params.__func__

    def properties(self, doc):
        return get_properties(self, doc if doc is not None else state.curdoc)

    def design_params(cls, viewable, mref, modifiers, document=None):
        return apply_params(cls, viewable, mref, modifiers, document or state.curdoc)

    Reactive._get_properties = properties
    Design._apply_params = classmethod(design_params)
    Reactive._workbench_local_css = True


class App(pn.viewable.Viewer):
    """One session's app: its Workbench and the components over it."""

    def __init__(self, limits: Limits | None = None, webgl: bool = False, **params):
        super().__init__(**params)
        values = limits.param.values() if limits is not None else {}
        session_limits = Limits(**{k: v for k, v in values.items() if k != "name"})
        self.workbench = Workbench(limits=session_limits, webgl=webgl)
        self.builder = NetworkBuilder(workbench=self.workbench)
        self.data = DataPicker(workbench=self.workbench)
        self.dashboard = TrainingDashboard(workbench=self.workbench)
        self.compare = CompareView(workbench=self.workbench)
        self.hardware = BackendPicker(workbench=self.workbench)
        self._views = (self.builder, self.data, self.dashboard, self.compare, self.hardware)
        # A tab's view enters the page on its first visit and then stays: later switches are
        # the browser's alone.  (Panel's dynamic tabs re-send a tab's whole model tree at every
        # visit; with a class on one server that was most of the server's time.)
        self._slots = [pn.Column(sizing_mode="stretch_width") for _ in TABS]
        self._slots[0].objects = [self.builder]
        self.tabs = pn.Tabs(*zip(TABS, self._slots), sizing_mode="stretch_width")
        self.tabs.param.watch(self._open, "active")

    def _open(self, event) -> None:
        """Tab ``event.new`` shown: its view enters the page the first time."""
        slot = self._slots[event.new]
        if not slot.objects:
            slot.objects = [self._views[event.new]]

    def teardown(self, *_) -> None:
        """Stop this session's training and comparison (its browser tab closed).  The server
        waits meanwhile, so the workers get a moment to end cleanly and are then terminated."""
        self.dashboard.teardown()
        self.compare.stop(timeout=1.0)

    def __panel__(self):
        header = pn.pane.Markdown(
            "# SNN Workbench\nBuild a spiking network, pick data and a backend, train it and "
            "compare algorithms. This session's network and runs are its own.",
            sizing_mode="stretch_width",
        )
        return pn.Column(header, self.tabs, sizing_mode="stretch_width")


def create_app(limits: Limits | None = None, webgl: bool = False) -> pn.viewable.Viewable:
    """A fresh app for one session; its runs stop when the session is destroyed."""
    app = App(limits=limits, webgl=webgl)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(app.teardown)
    return pn.panel(app)


def serve(
    port: int = 5006,
    address: str = "localhost",
    show: bool = False,
    limits: Limits | None = None,
    webgl: bool = False,
    allow_origins: list[str] | None = None,
    workers: int | None = None,
) -> None:
    """Serve the app on ``address:port`` until interrupted (one app per browser session).
    Browsers may connect through localhost, ``address`` and ``allow_origins`` (``host[:port]``,
    e.g. the lab server's name when listening on 0.0.0.0).  ``workers``: runs going at once,
    every session together (None: :func:`~workbench.widgets.scheduler.default_workers`); the
    rest wait in a fair queue.  What servers before this one left behind is removed first."""
    sweep()
    configure(workers)
    extension()
    warm_up()
    limits = limits or Limits()
    hosts = ["localhost", "127.0.0.1", address]
    origins = [f"{host}:{port}" for host in hosts] + list(allow_origins or [])
    pn.serve(
        {"/": lambda: create_app(limits, webgl)},
        port=port,
        address=address,
        show=show,
        title="SNN Workbench",
        websocket_origin=sorted(set(origins)),
        threaded=False,
    )
