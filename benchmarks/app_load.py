"""One app server under N students at once: what each browser session sees while all train.

Serves the app (``workbench app``, or uses ``--url``) and opens N sessions in one headless
Chromium (one browser context each, every request to a non-local host refused and recorded by
``offline()``).  Each session, as a student would:

1. opens the app and builds from the template picker ("Yin-Yang 5-120-3");
2. looks at Data, goes to Train, sets ``epochs`` (``--epochs``) and presses Start.  These are
   every tab's first visit (``first_visit_p95_s``; a tab's view enters the page then), made
   by all N sessions at once;
3. waits until every session has pressed Start: the class is in, the queue is full (with the
   default one worker slot on two cores: one run going, N - 1 queued).  What follows is the
   goal's situation, and the figures below are taken in it;
4. if its run goes: waits for its first plot update, then watches the Train tab for
   ``--window-s`` seconds;
5. pauses and resumes (a running run: waits until the batch counter has stood still for 3 s
   first; a queued one at once, where the app allows it: a disabled button is noted, not
   clicked);
6. switches tabs ``--rounds`` times Build -> Data -> Train;
7. if it was queued: waits on Train for its run to start, and watches it as in 4;
8. stops, and waits for the run to end.

After ``--budget-s`` seconds per N the sessions still going are stopped, queued ones included
(their Stop is measured too, ``stop_ack_queued_p95_s`` for those stopped while queued), and
what was measured is reported.

How the clock works.  Playwright's sync API drives all pages from this one thread, round
robin: each session is a generator that does one step (a click, a look at its page) and
yields, so a slow session never blocks the others.  No latency is timed here, though: a probe
script in every page (``PROBE``, installed before the app loads) stamps each click with
``performance.now()`` in the capture phase, before the app sees it, and stamps when the awaited
result appears: a word in the status line as the line changes (a ``MutationObserver``), an
element of the new tab laid out by a timer that looks every 25 ms while it waits (every
250 ms otherwise: twenty pages ticking every 25 ms took 0.2 cores of the shared CPUs).  Both
stamps come from the page's own clock, so a result is not inflated by the time this loop
spends on the other sessions (they do load the same CPUs, as real students' pages would).
A busy page stamps late all the same (its main thread runs the probe), and
``max_main_thread_delay_ms`` reports how late the timer fired at worst.

What is measured (page-side times, seconds unless named otherwise):

- tab switch (``tab_switch_*``, step 6) and first visit (``first_visit_p95_s``, step 2): from
  the click on a tab to its content laid out and visible (Build:
  ``.react-flow__node``, Data: the preview plot ``.wb-preview``, Train: ``.wb-start``; a
  tab's content enters the page at its first visit and stays, hidden, when another tab is
  open, so a visible element is what is waited for);
- Start -> first plot update: from the click on Start to the first rows streamed into the
  loss plot's data source (a ``ColumnsStreamed`` event of the page's Bokeh document: the data
  is in the page, drawn at the next animation frame).  The status line's first batch arrives in
  the same message from the server (the dashboard holds the document while it updates), so it
  is the fallback when no stream event was seen (plots rebuilt with their data in them).
  Train's plots stay in the page once visited, so the update is seen whichever tab is
  open.  Includes any queue wait;
- queue wait: from Start to the status line first saying ``running``, for sessions that were
  queued (0 for the others);
- updates per second, over the window on Train after the first update: the rate the status
  line reports (``N plot updates/s``, the server's count of the last 2 s, averaged over the
  window); independently, how often the status line's batch counter changed per second (each
  change is one server update that reached the page; a change of the rate figure alone is not
  counted); and the distinct plot-data frames the page received per second;
- Pause and Stop: ``*_ack``, from the click to the status line showing the new state
  (``paused``; ``stopping``, ``stopped``, ``cancelled``, ``done``); ``*_latency`` (the effect),
  from the click to the last advance of the batch counter after it (at least the ack): when
  the page shows the new state and the counter no longer moves.  Stop's effect is read once
  the run has ended (``stop_to_end`` is that time); Pause's once the counter has stood still
  for 3 s.  An ack that comes after its step gave up (120 s) is filled in at the end;
- memory (psutil, every 0.5 s): RSS of the server process, and of its training/comparison
  workers: the children of the multiprocessing fork server, itself a child of the server
  (workers are forked from it, so their command line is the fork server's; their process
  name is not set).  Workers share the fork server's pages (torch, the core), so their RSS
  counts those again; their USS (``peak_uss``) is what they add.  The fork server's own RSS
  is reported apart.  ``idle`` is before the sessions open, ``after`` once they are closed
  and the workers gone, ``peak`` the highest sample in between;
- CPU seconds (``cpu_s``) over the whole N: the server, its workers, and the Chromium this
  benchmark started, against the wall time;
- page errors: ``pageerror`` events and console messages of type error, and every URL refused
  by ``offline()``, each listed with its session and the step it came after
  (``session 2, after tab-Train: https://...``).

``--json FILE`` writes a row per N (the table's figures and more) with ``per_session``: each
session's values, notes (a step that timed out, a disabled button) and status line history.

    python benchmarks/app_load.py [--sessions 1,5,10,20] [--epochs 3] [--budget-s 300]
        [--json FILE] [--url http://host:port/ | --port P] [-- <workbench app options>]

e.g. ``-- --max-workers 1`` passes ``--max-workers 1`` to the server it starts.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from dataclasses import dataclass, field, fields
from urllib.parse import urlparse

import numpy as np
import psutil
from dashboard_updates import frames
from playwright.sync_api import sync_playwright

from workbench.widgets.browser import VIEWPORT, launch, offline, running_app

TEMPLATE = "Yin-Yang 5-120-3"
TAB_CONTENT = {"Build": ".react-flow__node", "Data": ".wb-preview", "Train": ".wb-start"}
QUIET_S = 3.0  # the batch counter standing still this long after Pause: the run is held
STEP_TIMEOUT_S = 120.0  # one step of a session (a tab, an acknowledgement) at most
STOP_GRACE_S = 60.0  # after the budget: time given to stop the sessions still going
# Every session takes one step per round, and each step asks its page something: a round
# at most this often (seconds), so the students' hands do not load the pages more than
# their eyes would.  Latencies are stamped in the page, so this sets no result's resolution.
ROUND_S = 0.1

# the page's side of the measurement (see the module's docstring)
PROBE = r"""
(() => {
  const FAST = 25, SLOW = 250;  // ms: the timer's period while a watch waits, and otherwise
  const wb = window.__wb = {
    watches: {}, status: [], streamed: [], late: 0,
    host: null, looked: 0, text: null, docs: new Set(), observer: null,
  };
  // every click, stamped before the app handles it; it starts the watches armed for it
  window.addEventListener("click", () => {
    const t = performance.now();
    for (const w of Object.values(wb.watches)) if (w.t0 === null) w.t0 = t;
    schedule(FAST);
  }, true);
  function deep(selector, root) {  // querySelector through Panel's shadow roots
    const found = root.querySelector(selector);
    if (found) return found;
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) {
        const inner = deep(selector, el.shadowRoot);
        if (inner) return inner;
      }
    }
    return null;
  }
  function visible(selector) {
    const el = deep(selector, document);
    // a tab not shown is laid out but hidden (visibility: hidden) by Bokeh's Tabs
    return el !== null && el.getClientRects().length > 0
      && el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
  }
  function statusText() {  // the status line's text (it stays in the page once Train is seen)
    const root = wb.host.shadowRoot || wb.host;
    const text = [...root.children].filter((c) => c.tagName !== "STYLE" && c.tagName !== "LINK")
      .map((c) => c.textContent).join(" ").trim();
    return text || null;  // null also while a new status line is being drawn
  }
  function seen(t) {  // the status line as it is now: recorded, and the watches for a word
    const text = statusText();
    if (text === null || text === wb.text) return;
    wb.status.push([t, text]);
    wb.text = text;
    for (const w of Object.values(wb.watches)) {
      if (w.kind === "status" && w.t0 !== null && w.t1 === null && new RegExp(w.arg).test(text))
        w.t1 = t;
    }
  }
  function attach(t) {  // find the status line and stamp each change of it as it happens
    if (wb.host !== null && wb.host.isConnected) return;
    if (t - wb.looked < 200) return;
    wb.looked = t;
    wb.host = deep(".wb-status", document);
    if (wb.host === null) return;
    if (wb.observer) wb.observer.disconnect();
    wb.observer = new MutationObserver(() => seen(performance.now()));
    wb.observer.observe(wb.host.shadowRoot || wb.host,
      {childList: true, subtree: true, characterData: true});
    seen(t);
  }
  function listen() {  // rows streamed into a plot (the loss curve) reach the page
    if (!window.Bokeh || !window.Bokeh.documents) return;
    for (const doc of window.Bokeh.documents) {
      if (wb.docs.has(doc)) continue;
      wb.docs.add(doc);
      doc.on_change((event) => {
        if (event.kind === "ColumnsStreamed") wb.streamed.push(performance.now());
      });
    }
  }
  wb.visible = visible;
  wb.arm = (name, kind, arg) => {  // watch for `arg` after the next click
    const present = kind === "visible" ? visible(arg) : false;
    wb.watches[name] = {kind, arg, t0: null, t1: null, present};
  };
  // the page's own clock starts at navigation: opening the app is timed from there
  wb.watches.open = {kind: "visible", arg: ".react-flow__node", t0: 0, t1: null};
  // One timer: FAST while a tab's content is awaited, SLOW otherwise (twenty pages ticking
  // every 25 ms cost the shared CPUs 0.2 cores).  How late it fires is the page's stall.
  let timer = null, due = 0;
  function schedule(period) {
    const at = performance.now() + period;
    if (timer !== null && due <= at) return;
    if (timer !== null) clearTimeout(timer);
    due = at;
    timer = setTimeout(tick, period);
  }
  function tick() {
    const t = performance.now();
    wb.late = Math.max(wb.late, t - due);
    timer = null;
    listen();
    attach(t);
    let waiting = false;
    for (const w of Object.values(wb.watches)) {
      if (w.t0 === null || w.t1 !== null) continue;
      if (w.kind === "status") {  // stamped as the line changes; this is for a line that
        if (wb.text !== null && new RegExp(w.arg).test(wb.text)) w.t1 = t;  // said it first
        continue;
      }
      if (visible(w.arg)) w.t1 = t;
      else waiting = true;
    }
    schedule(waiting ? FAST : SLOW);
  }
  schedule(FAST);
})();
"""

BATCH = re.compile(r"epoch (\d+)/\S+ · batch (\d+)/")
RATE = re.compile(r"([\d.]+) plot updates/s")
ACK = {
    "pause": r"^paused",
    "resume": r"^(running|queued)",
    "stop": r"^(stopping|stopped|cancelled|done|failed)",
}
ENDED = r"^(stopped|cancelled|done|failed)"
GOING = re.compile(r"^(queued|running|paused|stopping)")


@dataclass(eq=False)
class Session:
    """One browser session and what was measured in it (seconds; None: not measured)."""

    index: int
    context: object = field(repr=False)
    page: object = field(repr=False)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    open_s: float | None = None
    first_visits: list[float] = field(default_factory=list)  # Data, Train: their first draw
    tab_switches: list[float] = field(default_factory=list)
    start_ack_s: float | None = None  # Start -> the status line says queued/running
    start_to_first_plot_s: float | None = None
    first_plot_from: str | None = None  # "stream" or "status"
    queued: bool = False
    queue_wait_s: float | None = None
    updates_per_s: float | None = None
    status_changes_per_s: float | None = None
    plot_frames_per_s: float | None = None
    pause_ack_s: float | None = None
    pause_latency_s: float | None = None
    resume_ack_s: float | None = None
    stop_ack_s: float | None = None
    stop_latency_s: float | None = None
    stop_to_end_s: float | None = None
    stopped_at_budget: bool = False
    max_main_thread_delay_ms: float | None = None
    pause_while: str = ""  # the state when Pause / Stop was clicked (queued, running, ...)
    stop_while: str = ""
    final_status: str = ""
    status_history: list = field(default_factory=list)  # (page ms, text) of each change
    notes: list[str] = field(default_factory=list)
    # (step, blocked so far, errors so far) at each step: which step a request or error
    # came in (the page's events reach these lists during this thread's Playwright calls)
    marks: list[tuple[str, int, int]] = field(default_factory=list)

    # ------------------------------------------------------------------ the page
    def now(self) -> float:
        """The page's clock, ms."""
        return self.page.evaluate("performance.now()")

    def status(self) -> str:
        """The status line as last seen by the probe ('' before it was ever shown)."""
        return self.page.evaluate("window.__wb ? (window.__wb.text || '') : ''")

    def state(self) -> str:
        """The run's state as the status line last said (its first word)."""
        return (self.status().split() or [""])[0]

    def status_log(self) -> list[tuple[float, str]]:
        return [tuple(x) for x in self.page.evaluate("window.__wb.status")]

    def visible(self, selector: str) -> bool:
        return self.page.evaluate("(s) => !!window.__wb && window.__wb.visible(s)", selector)

    def mark(self, step: str) -> None:
        self.marks.append((step, len(self.blocked), len(self.errors)))

    def labelled(self, what: str) -> list[str]:
        """``blocked`` or ``errors``, each entry prefixed with the step it came in."""
        entries, column = getattr(self, what), 1 if what == "blocked" else 2
        out = []
        for k, entry in enumerate(entries):
            step = "open"
            for mark in self.marks:
                if mark[column] <= k:
                    step = mark[0]
            out.append(f"session {self.index}, after {step}: {entry}")
        return out

    def click(self, name: str, kind: str, arg: str, target: str, **has) -> bool:
        """Arm watch ``name`` (``kind`` 'visible' selector or 'status' regex ``arg``), then
        click ``target``; False (and a note) when ``target`` is disabled."""
        button = self.page.locator(target, **has).first
        if not button.is_enabled():
            self.notes.append(f"{name}: {target} is disabled ({self.status()[:40]!r})")
            return False
        self.mark(name)
        self.page.evaluate("([n, k, a]) => window.__wb.arm(n, k, a)", [name, kind, arg])
        if self.watch(name)["present"]:
            self.notes.append(f"{name}: {arg} was there before the click")
        button.click()
        return True

    def watch(self, name: str) -> dict | None:
        return self.page.evaluate("(n) => window.__wb ? window.__wb.watches[n] : null", name)


# ---------------------------------------------------------------------- steps (generators)
def wait(seconds: float):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        yield


def until(condition, timeout: float = STEP_TIMEOUT_S):
    """Yield until ``condition()`` is true; returns whether it became true in time."""
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            return False
        yield
    return True


def measured(s: Session, name: str, timeout: float = STEP_TIMEOUT_S):
    """Yield until watch ``name`` has its result; returns click -> result in seconds."""
    done = yield from until(lambda: (s.watch(name) or {}).get("t1") is not None, timeout)
    if not done:
        s.notes.append(f"{name}: no result in {timeout:.0f} s")
        return None
    w = s.watch(name)
    return (w["t1"] - w["t0"]) / 1000


def switch(s: Session, tab: str, into: list | None = None):
    """Click tab ``tab``; records the time until its content is visible (in ``into``, by
    default the session's ``tab_switches``)."""
    if not s.click(f"tab-{tab}", "visible", TAB_CONTENT[tab], ".bk-tab", has_text=tab):
        return
    took = yield from measured(s, f"tab-{tab}")
    if took is not None:
        (s.tab_switches if into is None else into).append(took)


def counter_moves(log, after_ms: float) -> float | None:
    """The page time of the batch counter's last advance after ``after_ms`` (None: none)."""
    last, moved = None, None
    for t, text in log:
        m = BATCH.search(text)
        here = (int(m[1]), int(m[2])) if m else None
        if t > after_ms and here is not None and last is not None and here != last:
            moved = t
        last = here if here is not None else last
    return moved


def first_match(log, after_ms: float, pattern: str) -> float | None:
    """The page time of the first status line after ``after_ms`` matching ``pattern``."""
    return next((t for t, text in log if t > after_ms and re.search(pattern, text)), None)


def pause_and_resume(s: Session):
    s.pause_while = s.state()
    if not s.click("pause", "status", ACK["pause"], ".wb-pause button"):
        return
    s.pause_ack_s = yield from measured(s, "pause")
    if s.pause_ack_s is None:
        return
    clicked = s.watch("pause")["t0"]
    # held: the status has said "paused" for QUIET_S without the counter moving
    yield from until(
        lambda: s.now() - max(clicked, counter_moves(s.status_log(), clicked) or 0) > QUIET_S * 1000
    )
    moved = counter_moves(s.status_log(), clicked)
    s.pause_latency_s = max(s.pause_ack_s, ((moved or clicked) - clicked) / 1000)
    if s.click("resume", "status", ACK["resume"], ".wb-pause button"):
        s.resume_ack_s = yield from measured(s, "resume")


def stop(s: Session, timeout: float = STEP_TIMEOUT_S):
    """Stop the run: ack, effect (last counter advance) and end."""
    if not GOING.match(s.status()):
        s.notes.append(f"stop: not going ({s.status()[:40]!r})")
        return
    s.stop_while = s.state()
    if not s.click("stop", "status", ACK["stop"], ".wb-stop button"):
        return
    s.stop_ack_s = yield from measured(s, "stop", timeout)
    if s.stop_ack_s is None or not (yield from until(lambda: re.match(ENDED, s.status()), timeout)):
        return
    clicked, log = s.watch("stop")["t0"], s.status_log()
    s.stop_to_end_s = (first_match(log, clicked, ENDED) - clicked) / 1000
    moved = counter_moves(log, clicked)
    s.stop_latency_s = max(s.stop_ack_s, ((moved or clicked) - clicked) / 1000)


def first_update(s: Session, started: float):
    """Wait (on Train) for the run's first plot update after the Start click at ``started``."""

    def seen() -> bool:
        streamed = [t for t in s.page.evaluate("window.__wb.streamed") if t > started]
        batches = [t for t, text in s.status_log() if t > started and BATCH.search(text)]
        if streamed:
            s.start_to_first_plot_s, s.first_plot_from = (streamed[0] - started) / 1000, "stream"
        elif batches:
            s.start_to_first_plot_s, s.first_plot_from = (batches[0] - started) / 1000, "status"
        return bool(streamed or batches) or re.match(ENDED, s.status()) is not None

    yield from until(seen, float("inf"))  # bounded by the budget
    if s.queued:
        running = first_match(s.status_log(), started, "^running")
        s.queue_wait_s = (running - started) / 1000 if running else None
    else:
        s.queue_wait_s = 0.0


def watch_updates(s: Session, seconds: float):
    """Stay on Train ``seconds``; the update rates over that window."""
    begin = s.now()
    yield from wait(seconds)
    end = s.now()
    log = [(t, text) for t, text in s.status_log() if begin <= t <= end]
    rates = [float(m[1]) for _, text in log if (m := RATE.search(text))]
    s.updates_per_s = float(np.mean(rates)) if rates else 0.0
    counters = [m.groups() for _, text in log if (m := BATCH.search(text))]
    changes = sum(a != b for a, b in zip(counters, counters[1:]))
    s.status_changes_per_s = changes / ((end - begin) / 1000)
    streamed = [t for t in s.page.evaluate("window.__wb.streamed") if begin <= t <= end]
    s.plot_frames_per_s = len(frames(streamed)) / ((end - begin) / 1000)


def student(s: Session, url: str, args, setting_up: set):
    """One session's whole visit (see the module's docstring).  ``setting_up``: the sessions
    that have not pressed Start yet; the class's part begins once it is empty."""
    try:
        yield from set_up(s, url, args.epochs)
    finally:
        setting_up.discard(s)
    if s.start_ack_s is None:
        return
    started = s.watch("start")["t0"]
    s.queued = s.status().startswith("queued")
    yield from until(lambda: not setting_up, float("inf"))  # the queue is full
    if not s.queued and not (yield from watched(s, started, args.window_s)):
        return
    yield from pause_and_resume(s)  # a queued run's at once; a running one's held
    for _ in range(args.rounds):
        for tab in ("Build", "Data", "Train"):
            yield from switch(s, tab)
    if s.queued and not (yield from watched(s, started, args.window_s)):
        return
    yield from stop(s)


def set_up(s: Session, url: str, epochs: int):
    """Open the app, build from the template, look at the data, set the epochs and Start:
    every tab is visited for the first time here (``first_visits``)."""
    s.page.goto(url, wait_until="commit")
    s.open_s = yield from measured(s, "open")  # from navigation to the builder drawn
    if s.open_s is None:
        return
    s.page.evaluate("window.__wb.late = 0")
    s.mark("template")
    s.page.locator(".wb-template select").first.select_option(label=TEMPLATE)
    s.page.locator(".wb-use-template button").first.click()
    yield from wait(1.0)
    for tab in ("Data", "Train"):
        yield from switch(s, tab, s.first_visits)
    s.mark("epochs")
    setting = s.page.get_by_label("epochs", exact=True).first
    setting.fill(str(epochs))
    setting.press("Tab")
    yield from wait(0.5)
    s.click("start", "status", r"^(queued|running|failed)", ".wb-start button")
    s.start_ack_s = yield from measured(s, "start")


def watched(s: Session, started: float, window_s: float):
    """Wait for the run's first plot update, then watch Train's updates for ``window_s``;
    False when the run ended first."""
    yield from first_update(s, started)
    if not GOING.match(s.status()):
        s.notes.append(f"the run ended before it was watched: {s.status()[:60]!r}")
        return False
    if not s.visible(".wb-start"):
        yield from switch(s, "Train")
    yield from watch_updates(s, window_s)
    return True


def stop_remaining(s: Session):
    """After the budget: back to Train if need be, and Stop whatever still goes."""
    s.stopped_at_budget = True
    if s.open_s is None:
        return
    if not s.visible(".wb-stop"):
        yield from switch(s, "Train")
    yield from stop(s, STOP_GRACE_S)


# ---------------------------------------------------------------------- the sessions' loop
def open_session(browser, index: int) -> Session:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(script=PROBE)
    blocked = offline(context)
    page = context.new_page()
    s = Session(index, context, page, blocked=blocked)
    page.on("pageerror", lambda exc: s.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: s.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return s


def drive(steps: dict, deadline: float | None) -> None:
    """Step every session's generator in turn until all are done (or ``deadline``)."""
    while steps and (deadline is None or time.perf_counter() < deadline):
        begun = time.perf_counter()
        for s, step in list(steps.items()):
            try:
                next(step)
            except StopIteration:
                del steps[s]
            except Exception as exc:  # one session's failure is reported, the rest go on
                first_line = (str(exc).splitlines() or [""])[0]
                s.notes.append(f"{type(exc).__name__}: {first_line[:200]}")
                del steps[s]
        time.sleep(max(0.0, ROUND_S - (time.perf_counter() - begun)))


def run_sessions(browser, url: str, n: int, args) -> list[Session]:
    sessions = [open_session(browser, k) for k in range(n)]
    setting_up = set(sessions)
    steps = {s: student(s, url, args, setting_up) for s in sessions}
    drive(steps, time.perf_counter() + args.budget_s)
    for s, step in steps.items():  # the budget is spent: stop what still goes
        step.close()
        steps[s] = stop_remaining(s)
    drive(steps, time.perf_counter() + STOP_GRACE_S)
    for s in sessions:
        try:
            late_acks(s)
            s.final_status = s.status()
            s.status_history = s.status_log()
            s.max_main_thread_delay_ms = s.page.evaluate("window.__wb.late")
        except Exception as exc:
            s.notes.append(f"final read: {type(exc).__name__}")
    return sessions


def late_acks(s: Session) -> None:
    """Acknowledgements that came after their step gave up waiting (the page kept watching)."""
    for name in ("start", "pause", "resume", "stop"):
        w = s.watch(name)
        if getattr(s, f"{name}_ack_s") is None and w and w["t0"] is not None and w["t1"]:
            setattr(s, f"{name}_ack_s", (w["t1"] - w["t0"]) / 1000)
            s.notes.append(f"{name}: acknowledged late, after {(w['t1'] - w['t0']) / 1000:.1f} s")


# ---------------------------------------------------------------------- memory
def server_pid(url: str) -> int | None:
    """The pid listening on ``url``'s port (for ``--url``), if this machine has it."""
    port = urlparse(url).port or 80
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def forkservers(server: psutil.Process) -> list[psutil.Process]:
    """The server's multiprocessing fork server (its workers are the fork server's children;
    their command line is the fork server's)."""
    found = []
    for child in server.children():
        try:
            if "forkserver" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def rss(pid: int) -> dict:
    """Memory in MiB: RSS of the server and of the fork server, and of each worker its RSS
    and its USS (the pages only it holds: what it adds beyond those it shares with the fork
    server it was forked from, torch and the core)."""
    mib = 2**-20
    server = psutil.Process(pid)
    out = {"server": server.memory_info().rss * mib, "forkserver": 0.0, "workers": []}
    for child in forkservers(server):
        try:
            out["forkserver"] = child.memory_info().rss * mib
            for worker in child.children(recursive=True):
                info = worker.memory_full_info()
                out["workers"].append((info.rss * mib, info.uss * mib))
        except psutil.Error:
            pass
    return out


def cpu_seconds(pid: int | None) -> dict:
    """CPU seconds used so far (user + system): the server, its workers (live ones, and those
    the fork server has reaped), and the Chromium this benchmark started (the sessions' pages,
    the browser and its helpers)."""

    def used(times, children: bool = False) -> float:
        own = times.user + times.system
        return own + (times.children_user + times.children_system if children else 0.0)

    out = {"server": 0.0, "workers": 0.0, "browsers": 0.0}
    if pid is not None:
        server = psutil.Process(pid)
        out["server"] = used(server.cpu_times())
        for child in forkservers(server):
            try:
                out["workers"] += used(child.cpu_times(), children=True)
                for worker in child.children(recursive=True):
                    out["workers"] += used(worker.cpu_times())
            except psutil.Error:
                pass
    for proc in psutil.Process().children(recursive=True):  # Playwright's driver, its Chromium
        try:
            if "chrom" in proc.name():
                out["browsers"] += used(proc.cpu_times())
        except psutil.Error:
            pass
    return out


class MemorySampler(threading.Thread):
    """Samples :func:`rss` every ``period`` seconds until stopped."""

    def __init__(self, pid: int, period: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.period, self.samples = pid, period, []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.period):
            try:
                self.samples.append(rss(self.pid))
            except psutil.Error:
                return


def idle_rss(pid: int | None, timeout: float = 60.0) -> dict | None:
    """The processes' memory once no worker is left (waits up to ``timeout``)."""
    if pid is None:
        return None
    end = time.perf_counter() + timeout
    while rss(pid)["workers"] and time.perf_counter() < end:
        time.sleep(0.5)
    return rss(pid)


# ---------------------------------------------------------------------- the report
def pct(values, q: float) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 3) if values else None


SKIP = ("context", "page", "blocked", "errors", "marks")  # (listed above per_session)


def summary(n: int, sessions: list[Session], memory: dict) -> dict:
    switches = [t for s in sessions for t in s.tab_switches]
    first = [s.start_to_first_plot_s for s in sessions]
    return {
        "sessions": n,
        "tab_switch_p50_s": pct(switches, 50),
        "tab_switch_p95_s": pct(switches, 95),
        "tab_switches": len(switches),
        "open_p95_s": pct([s.open_s for s in sessions], 95),
        "first_visit_p95_s": pct([t for s in sessions for t in s.first_visits], 95),
        "start_to_first_plot_s": {"p50": pct(first, 50), "p95": pct(first, 95)},
        "start_to_first_plot_p95_s": pct(first, 95),
        "queued_sessions": sum(s.queued for s in sessions),
        "queue_wait_p95_s": pct([s.queue_wait_s for s in sessions], 95),
        "updates_per_s": pct([s.updates_per_s for s in sessions], 50),
        "updates_per_s_min": pct([s.updates_per_s for s in sessions], 0),
        "status_changes_per_s": pct([s.status_changes_per_s for s in sessions], 50),
        "status_changes_per_s_min": pct([s.status_changes_per_s for s in sessions], 0),
        "plot_frames_per_s": pct([s.plot_frames_per_s for s in sessions], 50),
        "pause_ack_p95_s": pct([s.pause_ack_s for s in sessions], 95),
        "pause_latency_p95_s": pct([s.pause_latency_s for s in sessions], 95),
        "pause_ack_queued_p95_s": pct(
            [s.pause_ack_s for s in sessions if s.pause_while == "queued"], 95
        ),
        "resume_ack_p95_s": pct([s.resume_ack_s for s in sessions], 95),
        "stop_ack_p95_s": pct([s.stop_ack_s for s in sessions], 95),
        "stop_ack_queued_p95_s": pct(
            [s.stop_ack_s for s in sessions if s.stop_while == "queued"], 95
        ),
        "stop_latency_p95_s": pct([s.stop_latency_s for s in sessions], 95),
        "stop_to_end_p95_s": pct([s.stop_to_end_s for s in sessions], 95),
        "stopped_at_budget": sum(s.stopped_at_budget for s in sessions),
        "max_main_thread_delay_ms": pct([s.max_main_thread_delay_ms for s in sessions], 100),
        **memory,
        "page_errors": sum(len(s.errors) for s in sessions),
        "page_error_messages": [e for s in sessions for e in s.labelled("errors")],
        "blocked_requests": [u for s in sessions for u in s.labelled("blocked")],
        "notes": [f"session {s.index}: {note}" for s in sessions for note in s.notes],
        "per_session": [
            {f.name: getattr(s, f.name) for f in fields(s) if f.name not in SKIP} for s in sessions
        ],
    }


def memory_summary(before: dict | None, samples: list[dict], after: dict | None) -> dict:
    if before is None:
        return {"server_rss_mb": None, "worker_rss_mb": None, "forkserver_rss_mb": None}
    samples = samples or [before]

    def peak(of) -> float:
        return round(max(of(m) for m in samples), 1)

    def total(m, k: int) -> float:
        return sum(w[k] for w in m["workers"])

    return {
        "server_rss_mb": {
            "idle": round(before["server"], 1),
            "peak": peak(lambda m: m["server"]),
            "after": round(after["server"], 1) if after else None,
        },
        "worker_rss_mb": {
            "idle": round(total(before, 0), 1),
            "peak": peak(lambda m: total(m, 0)),
            "peak_one": peak(lambda m: max((w[0] for w in m["workers"]), default=0.0)),
            "peak_uss": peak(lambda m: total(m, 1)),
            "peak_uss_one": peak(lambda m: max((w[1] for w in m["workers"]), default=0.0)),
            "peak_count": max(len(m["workers"]) for m in samples),
        },
        "forkserver_rss_mb": round(before["forkserver"], 1),
    }


def table(rows: list[dict]) -> str:
    def f(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    head = (
        f"{'N':>3} {'open95':>6} {'visit95':>7} {'tab p50':>7} {'tab p95':>7} {'1st p50':>7} "
        f"{'1st p95':>7} {'queue95':>7} "
        f"{'upd/s':>5} {'chg/s':>5} {'pause ack/eff':>13} {'stop ack/eff':>13} "
        f"{'server MB idle/peak':>19} {'workers MB':>10} {'errors':>6} {'blocked':>7}"
    )
    lines = [head]
    for r in rows:
        server, workers = r["server_rss_mb"] or {}, r["worker_rss_mb"] or {}
        lines.append(
            f"{r['sessions']:>3} {f(r['open_p95_s']):>6} {f(r['first_visit_p95_s']):>7} "
            f"{f(r['tab_switch_p50_s']):>7} {f(r['tab_switch_p95_s']):>7} "
            f"{f(r['start_to_first_plot_s']['p50']):>7} {f(r['start_to_first_plot_s']['p95']):>7} "
            f"{f(r['queue_wait_p95_s']):>7} {f(r['updates_per_s'], '.1f'):>5} "
            f"{f(r['status_changes_per_s'], '.1f'):>5} "
            f"{f(r['pause_ack_p95_s']):>6}/{f(r['pause_latency_p95_s']):<6} "
            f"{f(r['stop_ack_p95_s']):>6}/{f(r['stop_latency_p95_s']):<6} "
            f"{f(server.get('idle'), '.0f'):>9}/{f(server.get('peak'), '.0f'):<9} "
            f"{f(workers.get('peak'), '.0f'):>10} {r['page_errors']:>6} "
            f"{len(r['blocked_requests']):>7}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- main
def measure(url: str, pid: int | None, args) -> list[dict]:
    rows = []
    with sync_playwright() as p:
        browser = launch(p)
        for n in [int(c) for c in args.sessions.split(",")]:
            before = idle_rss(pid)
            sampler = MemorySampler(pid) if pid else None
            if sampler:
                sampler.start()
            cpu_before, started = cpu_seconds(pid), time.perf_counter()
            sessions = run_sessions(browser, url, n, args)
            cpu = {k: v - cpu_before[k] for k, v in cpu_seconds(pid).items()}
            cpu["wall"] = time.perf_counter() - started
            for s in sessions:
                s.context.close()
            after = idle_rss(pid)
            if sampler:
                sampler.halt.set()
                sampler.join()
            memory = memory_summary(before, sampler.samples if sampler else [], after)
            rows.append(summary(n, sessions, memory))
            rows[-1]["cpu_s"] = {k: round(v, 1) for k, v in cpu.items()}
            brief = {k: v for k, v in rows[-1].items() if k != "per_session"}
            print(json.dumps(brief), flush=True)
        browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,5,10,20", help="session counts, e.g. 1,5,10")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=300.0, help="per session count")
    parser.add_argument("--window-s", type=float, default=5.0, help="update rates over this")
    parser.add_argument("--rounds", type=int, default=3, help="Build -> Data -> Train rounds")
    parser.add_argument("--json", help="write the results (per N, per session) here")
    parser.add_argument("--url", help="an app already served (else one is started)")
    parser.add_argument("--port", type=int, help="port of the server started here")
    parser.add_argument("server_args", nargs="*", help="after --: `workbench app` options")
    args = parser.parse_args()
    if args.url:
        rows = measure(args.url, server_pid(args.url), args)
    else:
        with running_app(*args.server_args, port=args.port, with_process=True) as (url, child):
            rows = measure(url, child.pid, args)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
