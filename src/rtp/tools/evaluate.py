"""``rtp evaluate``: prequential replay evaluation through the production dataflow.

Every event that follows another in the same session and names an item is a target; it is
scored against the ``home`` list the flow would serve that user at that moment (computed after
the previous event, before this one is learned: test-then-train). Modes:

- ``realtime``: the flow as it runs live;
- ``batch``: the same flow, but what it serves is recomputed only every ``refresh`` of event
  time and frozen in between, so the session's own events are not used until the next refresh
  (what a nightly batch system would serve; learners keep learning, serving does not see it);
- ``popular``: non-personalized trending items, a floor.

``--warmup FILE`` replays a file first without scoring; ``--split F`` scores only the events
after the first fraction ``F`` of the stream's time span. ``--baselines sknn,stan`` scores the
session-kNN and STAN baselines (``rtp.evaluation.baselines``) on the same targets.

The report holds every metric with a bootstrap interval, the realtime-over-batch lift on paired
targets, re-show shares and new-to-session metrics (so re-showing the last item is not mistaken
for discovery), and catalogue coverage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from rtp.capture.events import CONTROL_TYPES, Event
from rtp.config import Settings
from rtp.engine.shard import MODES, REALTIME


def load_events(paths: Sequence[str | Path], fmt: str, sort: bool | None = None) -> list[Event]:
    """Every accepted event of ``paths``, in replay order (for baselines and split points)."""
    from rtp.flow.sources import FilesSource

    src = FilesSource([str(p) for p in paths], fmt, batch_lines=50_000, sort=sort)
    part = src.build_part("scan", FilesSource.PART, None)
    out: list[Event] = []
    while True:
        try:
            batches = part.next_batch()
        except StopIteration:
            break
        for b in batches:
            out.extend(b.events)
    return out


def run_mode(
    paths: Sequence[str | Path],
    fmt: str,
    settings: Settings,
    mode: str,
    refresh_s: float,
    ks: tuple[int, ...],
    score_from_ts: float = 0.0,
    sort: bool | None = None,
) -> tuple[Any, float]:
    """One mode through the dataflow: its :class:`~rtp.evaluation.metrics.Prequential`, seconds."""
    from bytewax.testing import TestingSink, run_main

    from rtp.flow.dataflow import build_flow
    from rtp.flow.sources import FilesSource

    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    out: list[Any] = []
    source = FilesSource([str(p) for p in paths], fmt, batch_lines=settings.batch_lines, sort=sort)
    flow = build_flow(
        source,
        settings,
        TestingSink(out),
        mode=mode,
        refresh_s=refresh_s,
        evaluate=True,
        track_lag=False,
        name=f"rtp_eval_{mode}",
        engine_kwargs={"ks": ks, "score_from_ts": score_from_ts},
    )
    t0 = time.perf_counter()
    run_main(flow)
    seconds = time.perf_counter() - t0
    preqs = [p for w in out for p in w.evals]
    if not preqs:
        raise RuntimeError("the evaluation flow produced no targets")
    first = preqs[0]
    for p in preqs[1:]:
        first.merge(p)
    return first, seconds


def evaluate(
    paths: Sequence[str | Path],
    fmt: str,
    settings: Settings,
    *,
    modes: Sequence[str] = (REALTIME,),
    refresh_s: float = 86_400.0,
    ks: Sequence[int] = (5, 10, 20),
    warmup: Sequence[str | Path] = (),
    split: float | None = None,
    baselines: Sequence[str] = (),
    report_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    n_boot: int = 1_000,
) -> dict[str, Any]:
    """Evaluate each mode (and baseline) on the same targets; the report as a dict."""
    from rtp.evaluation.metrics import paired_lift, plot_series

    ks_t = tuple(sorted({int(k) for k in ks}))
    all_paths = [*warmup, *paths]
    score_from = 0.0
    events: list[Event] | None = None
    if warmup or split is not None or baselines:
        events = load_events(all_paths, fmt)
        if warmup:
            n_warm = len(load_events(list(warmup), fmt))
            score_from = events[n_warm].ts if n_warm < len(events) else float("inf")
        elif split is not None:
            if not 0.0 < split < 1.0:
                raise ValueError("--split is a fraction between 0 and 1")
            t_first, t_last = events[0].ts, events[-1].ts
            score_from = t_first + split * (t_last - t_first)
    preqs: dict[str, Any] = {}
    reports: dict[str, Any] = {}
    for mode in modes:
        preq, seconds = run_mode(all_paths, fmt, settings, mode, refresh_s, ks_t, score_from)
        preqs[mode] = preq
        rep = preq.report(n_boot=n_boot)
        rep.update(preq.coverage())
        rep["series"] = preq.series()
        rep["seconds"] = round(seconds, 2)
        reports[mode] = rep
    for name in baselines:
        preq, seconds = run_named_baseline(name, events or [], ks_t, score_from, settings)
        preqs[name] = preq
        rep = preq.report(n_boot=n_boot)
        rep.update(preq.coverage())
        rep["series"] = preq.series()
        rep["seconds"] = round(seconds, 2)
        reports[name] = rep
    k = max(ks_t)
    report: dict[str, Any] = {
        "paths": [str(p) for p in paths],
        "warmup": [str(p) for p in warmup],
        "format": fmt,
        "split": split,
        "score_from_ts": score_from,
        "refresh_s": refresh_s,
        "ks": list(ks_t),
        "protocol": (
            "prequential: each event after the first of its session is a target, scored against "
            "the home list served just before it; 'reviews' are targets already seen in the session"
        ),
        "modes": reports,
    }
    if len(modes) == 1:
        report.update({key: v for key, v in reports[modes[0]].items() if key != "series"})
        report["mode"] = modes[0]
    lifts: dict[str, Any] = {}
    for a in preqs:
        for b in preqs:
            if a != b and a == REALTIME:
                lifts[f"{a}_over_{b}"] = paired_lift(preqs[a], preqs[b], k=k, n_boot=n_boot)
    if lifts:
        report["lift"] = lifts
    if report_path is not None:
        Path(report_path).write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    if plot_path is not None:
        plot_series(reports, plot_path, k=k)
    return report


def run_named_baseline(
    name: str, events: list[Event], ks: tuple[int, ...], score_from: float, settings: Settings
) -> tuple[Any, float]:
    from rtp.evaluation.baselines import STAN, SessionKNN, run_baseline

    models = {"sknn": SessionKNN, "stan": STAN}
    if name not in models:
        raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(models)}")
    items = [e for e in events if e.type not in CONTROL_TYPES]
    warm = [e for e in items if e.ts < score_from]
    test = [e for e in items if e.ts >= score_from]
    t0 = time.perf_counter()
    preq = run_baseline(
        models[name](), test, ks=ks, warmup=warm, session_gap_s=settings.session_gap_s
    )
    return preq, time.perf_counter() - t0


def summary(report: dict[str, Any]) -> str:
    lines = []
    k = max(report["ks"])
    for name, rep in report["modes"].items():
        hr = rep[f"hr@{k}"]
        mrr = rep[f"mrr@{k}"]
        new = rep.get("new_to_session", {}).get(f"hr@{k}", {})
        new_hr = new.get("value", float("nan"))
        lines.append(
            f"{name:>9}: HR@{k} {hr['value']:.4f} [{hr['ci'][0]:.4f}, {hr['ci'][1]:.4f}]  "
            f"MRR@{k} {mrr['value']:.4f}  new-to-session HR@{k} {new_hr:.4f}  "
            f"coverage@{k} {rep.get(f'coverage@{k}', float('nan')):.3f}  targets {rep['targets']}"
        )
    for name, lift in report.get("lift", {}).items():
        for metric in (f"hr@{k}", f"mrr@{k}"):
            ratio = lift.get("ratio", {}).get(metric, {})
            value, ci = ratio.get("value"), ratio.get("ci")
            if value is None or value != value:
                text = "n/a (no hits in the second)"
            else:
                text = f"{value:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            lines.append(f"lift {name} {metric}: {text} on {lift.get('paired_targets')} targets")
    return "\n".join(lines)
