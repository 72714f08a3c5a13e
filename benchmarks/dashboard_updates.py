"""How fast the training dashboard updates in a real browser during a Yin-Yang run.

Serves the app (``workbench app``) in a child process, opens it in headless Chromium (Debian's,
through Playwright), starts the default Yin-Yang training (surrogate gradients, 5-120-3) on the
Train tab and listens, inside the page, to the Bokeh document: every change of a plot's data
that reaches the browser (a streamed loss row, a new raster or trace) is time-stamped there.
Prints, per network:

- Start -> first plot update: from the click on Start to the first data change in the page
  (includes starting the worker process, loading the data and the first batches);
- plot updates per second over a window of the run (browser side, distinct frames: changes
  within 30 ms of each other belong to one server update);
- the data sent per update (bytes of the changed columns, as the page receives them).

The second row runs a 1,000-neuron hidden population for 1,000 steps (loaded into the builder
as JSON), the size the dashboard must keep smooth.

``--concurrent 1,2,4,...`` then opens that many sessions (one browser context each, as
students would), starts the Yin-Yang training in all of them at once, and after ``--seconds``
reports the slowest session's plot updates per second, the longest main-thread delay of any
page, and how long a further, idle session takes to switch to its Train tab: a class fits
while every page keeps updating and the idle one answers within a second or two.

    python benchmarks/dashboard_updates.py [--seconds 30] [--concurrent 1,2,3,4]
"""

from __future__ import annotations

import argparse
import json
import time

from playwright.sync_api import sync_playwright

from workbench.spec import feedforward
from workbench.widgets.browser import launch, open_session, running_app
from workbench.widgets.templates import TEMPLATES

LISTEN = """() => {
  window.__updates = [];
  // the page's main thread: how late a 50 ms timer fires (a frozen page fires late)
  window.__late = 0;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    window.__late = Math.max(window.__late, now - last - 50);
    last = now;
  }, 50);
  for (const doc of window.Bokeh.documents) {
    doc.on_change((event) => {
      const kind = event.constructor.name;
      if (event.column_source !== undefined || event.data !== undefined && event.model
          && event.model.type === "ColumnDataSource" || kind.includes("Column")) {
        window.__updates.push(performance.now());
      }
    }, true);
  }
  return window.Bokeh.documents.length;
}"""


def frames(times_ms: list[float], gap_ms: float = 30.0) -> list[float]:
    """Time-stamps of distinct updates: changes closer than ``gap_ms`` are one frame."""
    out: list[float] = []
    for t in sorted(times_ms):
        if not out or t - out[-1] > gap_ms:
            out.append(t)
    return out


def measure(page, seconds: float) -> dict:
    page.locator(".bk-tab", has_text="Train").first.click()
    page.locator(".wb-start button").first.wait_for(timeout=60_000)
    time.sleep(2.0)
    assert page.evaluate(LISTEN) >= 1
    clicked = page.evaluate("() => performance.now()")
    page.locator(".wb-start button").first.click()
    deadline = time.monotonic() + 180
    while not page.evaluate("() => window.__updates.length"):
        assert time.monotonic() < deadline, "no plot update within 180 s of Start"
        time.sleep(0.05)
    time.sleep(seconds)
    updates = frames(page.evaluate("() => window.__updates"))
    late = page.evaluate("() => window.__late")
    page.locator(".wb-stop button").first.click()
    first = updates[0] - clicked
    window = [t for t in updates if t >= updates[0] + 2000]  # after the first two seconds
    span = (window[-1] - window[0]) / 1000 if len(window) > 1 else float("nan")
    return {
        "start_to_first_update_s": first / 1000,
        "updates_per_s": (len(window) - 1) / span if len(window) > 1 else 0.0,
        "updates": len(updates),
        "max_main_thread_delay_ms": late,
    }


def server_update_seconds(spec, repeats: int = 5) -> float:
    """The server's time for one dashboard update carrying a recorded sample of ``spec``
    (rasters and traces downsampled, one streamed loss row), measured in this process."""
    import queue

    import numpy as np
    import torch

    from workbench.recording import to_dataset
    from workbench.training import BatchEnd, SampleRecorded
    from workbench.widgets.dashboard import TrainingDashboard
    from workbench.widgets.state import Workbench

    dash = TrainingDashboard(workbench=Workbench(spec=spec), autopoll=False)
    recordings = {
        pop.name: {
            "v": torch.randn(spec.n_steps, 1, pop.size),
            **(
                {"spikes": (torch.rand(spec.n_steps, 1, pop.size) < 0.02).float()}
                if pop.spiking
                else {}
            ),
        }
        for pop in spec.populations
    }
    sample = to_dataset(recordings, spec, "float")[["v", "spikes"]]
    times = []
    for k in range(repeats + 1):
        dash.session.events = queue.SimpleQueue()
        dash.session.events.put(BatchEnd(1, k + 1, 100, 1.0, 0.5))
        dash.session.events.put(SampleRecorded(1, k + 1, sample))
        started = time.perf_counter()
        dash.poll()
        times.append(time.perf_counter() - started)
    return float(np.median(times[1:]))


def concurrent(browser, url, n: int, seconds: float) -> dict:
    """``n`` sessions training Yin-Yang at once, and an idle session's tab switch."""
    sessions = [open_session(browser, url)[:2] for _ in range(n)]
    for _, page in sessions:
        page.locator(".bk-tab", has_text="Train").first.click()
        page.locator(".wb-start button").first.wait_for(timeout=60_000)
    time.sleep(2.0)
    clicked = []
    for _, page in sessions:
        assert page.evaluate(LISTEN) >= 1
        clicked.append(page.evaluate("() => performance.now()"))
        page.locator(".wb-start button").first.click()
    time.sleep(seconds)
    idle_context, idle, _, _ = open_session(browser, url)
    started = time.monotonic()
    idle.locator(".bk-tab", has_text="Train").first.click()
    idle.locator(".wb-start button").first.wait_for(timeout=300_000)
    tab_switch = time.monotonic() - started
    rates, firsts, late = [], [], 0.0
    for (_, page), t0 in zip(sessions, clicked):
        updates = frames(page.evaluate("() => window.__updates"))
        late = max(late, page.evaluate("() => window.__late"))
        firsts.append((updates[0] - t0) / 1000 if updates else float("nan"))
        window = [t for t in updates if updates and t >= updates[0] + 2000]
        span = (window[-1] - window[0]) / 1000 if len(window) > 1 else 0.0
        rates.append((len(window) - 1) / span if span > 0 else 0.0)
    for context, page in sessions:
        page.locator(".wb-stop button").first.click()
        context.close()
    idle_context.close()
    return {
        "sessions": n,
        "slowest_updates_per_s": min(rates),
        "start_to_first_update_s_max": max(firsts),
        "max_main_thread_delay_ms": late,
        "idle_tab_switch_s": tab_switch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrent", help="session counts to try, e.g. 1,2,4")
    args = parser.parse_args()
    if args.concurrent:
        counts = [int(c) for c in args.concurrent.split(",")]
        rows = []
        with running_app("--max-steps", "1000") as url, sync_playwright() as p:
            browser = launch(p)
            for n in counts:
                rows.append(concurrent(browser, url, n, args.seconds))
                print(rows[-1], flush=True)
            browser.close()
        print(
            f"{'sessions':>8} {'slowest updates/s':>18} {'Start->1st max':>15} "
            f"{'page max delay':>15} {'idle tab switch':>16}"
        )
        for r in rows:
            print(
                f"{r['sessions']:>8} {r['slowest_updates_per_s']:18.1f} "
                f"{r['start_to_first_update_s_max']:13.1f} s "
                f"{r['max_main_thread_delay_ms']:12.0f} ms {r['idle_tab_switch_s']:14.1f} s"
            )
        return
    big = feedforward(
        [5, 1000, 3],
        "lif",
        "li",
        dt=0.5,
        n_steps=1000,
        name="yinyang-5-1000-3",
        weight_init={"input->hidden": {"weight_std": 2.0}},
    )
    rows = []
    with running_app("--max-steps", "1000") as url, sync_playwright() as p:
        browser = launch(p)
        for name, spec in (("Yin-Yang 5-120-3, 100 steps", None), ("5-1000-3, 1000 steps", big)):
            context, page, blocked, _ = open_session(browser, url)
            if spec is not None:
                page.get_by_text("Load / save JSON").first.click()  # open the card
                page.locator(".wb-spec-json textarea").first.fill(spec.to_json())
                page.locator(".wb-load-spec button").first.click()
                page.locator(".react-flow__node", has_text="1000").first.wait_for(timeout=60_000)
            row = measure(page, args.seconds)
            row["network"] = name
            row["blocked_requests"] = len(blocked)
            row["server_s_per_update"] = server_update_seconds(
                spec or TEMPLATES["Yin-Yang 5-120-3"]()
            )
            rows.append(row)
            context.close()
        browser.close()
    print(
        f"{'network':30s} {'Start->1st update':>18s} {'updates/s':>10s} {'updates':>8s} "
        f"{'page max delay':>15s} {'server/update':>14s}"
    )
    for r in rows:
        print(
            f"{r['network']:30s} {r['start_to_first_update_s']:16.2f} s "
            f"{r['updates_per_s']:10.1f} {r['updates']:8d} "
            f"{r['max_main_thread_delay_ms']:12.0f} ms {1000 * r['server_s_per_update']:11.0f} ms"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
