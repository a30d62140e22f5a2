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
from rtp.engine.hooks import MODES, REALTIME


def load_events(paths: Sequence[str | Path], fmt: str, sort: bool | None = None) -> list[Event]:
    """Every accepted event of ``paths``, in replay order (for baselines and split points)."""
    from rtp.flow.sources import FilesSource

    src = FilesSource([str(p) for p in paths], fmt, batch_lines=50_000, sort=sort,
                      tick_records=50_000)  # fmt: skip
    out: list[Event] = []
    for b in src.read_all():
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
    targets: Sequence[str] = (),
    processes: int = 1,
) -> tuple[Any, float]:
    """One mode through the dataflow; its :class:`~rtp.evaluation.metrics.Prequential`, seconds.

    ``targets``: only events of these files (by name) are scored (the warm-up protocol);
    ``score_from_ts``: only events at or after this event time are scored (``--split``).
    """
    import uuid

    from bytewax.testing import TestingSink

    from rtp.flow.ready import FlowSpec
    from rtp.flow.runner import run as run_flow
    from rtp.store.server import redis_url

    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    run = f"eval-{mode}-{uuid.uuid4().hex[:6]}"
    spec = FlowSpec(
        kind="files",
        paths=[str(p) for p in paths],
        fmt=fmt,
        sort=sort,
        run=run,
        mode=mode,
        refresh_s=refresh_s,
        evaluate=True,
        ks=list(ks),
        targets=[Path(p).name for p in targets],
        score_from_ts=score_from_ts,
    )
    out: list[Any] = []
    with redis_url(settings) as url:
        settings = settings.replace(redis_url=url)
        if processes == 1:
            seconds = run_flow(spec, settings, sink=TestingSink(out))
            preqs = [p for w in out for p in w.evals]
        else:
            from rtp.flow.sinks import collect_evals

            seconds = run_flow(spec, settings, processes=processes)
            preqs = collect_evals(url, f"{settings.key_prefix}eval:{run}")
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
    processes: int = 1,
) -> dict[str, Any]:
    """Evaluate each mode (and baseline) on the same targets; the report as a dict.

    Warm-up protocol (the session-rec one): ``warmup`` files are replayed with the evaluated
    files, in event-time order when the format sorts, learned and never scored; only events of
    the evaluated ``paths`` are targets. ``split``: only events after that fraction of the time
    span are targets. ``processes``: run each mode on a cluster of that many processes.
    """
    from rtp.evaluation.metrics import paired_lift, plot_series

    ks_t = tuple(sorted({int(k) for k in ks}))
    all_paths = [*warmup, *paths]
    score_from = 0.0
    targets: list[str] = [str(p) for p in paths] if warmup else []
    events: list[Event] | None = None
    if split is not None or baselines:
        events = load_events(all_paths, fmt)
        if split is not None:
            if not 0.0 < split < 1.0:
                raise ValueError("--split is a fraction between 0 and 1")
            t_first, t_last = events[0].ts, events[-1].ts
            score_from = t_first + split * (t_last - t_first)
    preqs: dict[str, Any] = {}
    reports: dict[str, Any] = {}
    for mode in modes:
        preq, seconds = run_mode(
            all_paths, fmt, settings, mode, refresh_s, ks_t, score_from,
            targets=targets, processes=processes,
        )  # fmt: skip
        preqs[mode] = preq
        rep = preq.report(n_boot=n_boot)
        rep.update(preq.coverage())
        rep["series"] = preq.series()
        rep["seconds"] = round(seconds, 2)
        reports[mode] = rep
    target_names = {Path(p).name for p in targets}
    for name in baselines:
        preq, seconds = run_named_baseline(
            name, events or [], ks_t, score_from, settings, target_names
        )
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
        "processes": processes,
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
    name: str,
    events: list[Event],
    ks: tuple[int, ...],
    score_from: float,
    settings: Settings,
    targets: set[str] | frozenset[str] = frozenset(),
) -> tuple[Any, float]:
    """A session baseline on the same stream and the same targets as rtp's modes."""
    from rtp.evaluation.baselines import STAN, SessionKNN, run_baseline

    models = {"sknn": SessionKNN, "stan": STAN}
    if name not in models:
        raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(models)}")
    items = [e for e in events if e.type not in CONTROL_TYPES]

    def is_target(e: Event) -> bool:
        if e.ts < score_from:
            return False
        return not targets or e.pos.rsplit(":", 1)[0] in targets

    t0 = time.perf_counter()
    preq = run_baseline(
        models[name](), items, ks=ks, session_gap_s=settings.session_gap_s, is_target=is_target
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
