"""``rtp experiments report``: per-arm metrics against the control, SRM, bandits, and a plot.

:func:`build_report` merges the per-shard dicts the flow writes (``exp:{experiment}:{shard}`` from
:class:`rtp.experiments.design.ArmMetrics`, ``bandit:{name}:{shard}`` from
:class:`rtp.experiments.bandits.BanditTuner`) and compares every arm with its experiment's control:
two-proportion tests for rates (conversion, return rate, click-through), Welch and a bootstrap
for revenue per session and depth. :func:`render_text` prints it, :func:`plot` draws it,
:func:`rtp.experiments.cli.add_cli` wires the command (which reads the dicts from Redis).

>>> from rtp.experiments.design import ArmMetrics, ExperimentSet
>>> cfg = ExperimentSet.from_dict({"experiment": [{"name": "e", "placements": ["home"],
...     "control": "a", "arm": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}]})
>>> m = ArmMetrics("e", ["a", "b"], mode="replay")
>>> for i in range(200):
...     m.on_session_end("a" if i % 2 else "b", 4, i % 7 == 0, 10.0 * (i % 7 == 0), False, i)
>>> r = build_report(cfg, {"e": [m.to_dict()]}, {}, n_boot=200)
>>> r["experiments"]["e"]["arms"]["a"]["sessions"], r["experiments"]["e"]["srm"]["mismatch"]
(100, False)
>>> "Offline replay" in r["experiments"]["e"]["reading"]
True
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rtp.errors import RtpError
from rtp.experiments.bandits import BanditTuner
from rtp.experiments.design import ArmMetrics, ExperimentSet, load_experiments
from rtp.experiments.stats import (
    bootstrap_diff,
    compare_means,
    compare_proportions,
    proportion_ci,
    sample_ratio_mismatch,
)

Metrics = dict[str, list[dict[str, Any]]]
Bandits = dict[str, list[dict[str, Any]]]

_RATES = (("conversion", "conversions", "sessions"), ("return_rate", "returning", "sessions"))
_MEANS = (("revenue", "revenue_per_session", "revenue_var"), ("depth", "depth", "depth_var"))
_LABELS = {
    "conversion": "conversion",
    "return_rate": "return rate",
    "ctr": "click-through",
    "revenue": "revenue/session",
    "depth": "depth",
}


def build_report(
    config: ExperimentSet,
    metrics: Mapping[str, Sequence[Mapping[str, Any]]],
    bandits: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    alpha: float = 0.05,
    n_boot: int = 2_000,
    seed: int = 0,
    mode: str | None = None,
) -> dict[str, Any]:
    """The report as a JSON-able dict: ``{"experiments": {...}, "bandits": {...}, "warnings"}``.

    ``metrics`` maps an experiment to its per-shard :meth:`ArmMetrics.to_dict` outputs,
    ``bandits`` a bandit to its per-shard :meth:`BanditTuner.to_dict` outputs. ``mode``
    (``"replay"`` or ``"live"``) overrides the mode the metrics recorded; it decides the
    ``reading`` (what the numbers can mean).
    """
    warnings: list[str] = []
    experiments: dict[str, Any] = {}
    for i, (name, exp) in enumerate(config.experiments.items()):
        shards = list(metrics.get(name, []))
        merged = ArmMetrics.merge(shards, experiment=name)
        exp_mode = mode or merged.mode
        summary = merged.summary()
        arm_names = list(exp.arm_names) + [a for a in summary if a not in exp.shares]
        for a in arm_names:
            if a not in exp.shares:
                warnings.append(f"{name}: metrics have arm {a!r}, which the config does not list")
        arms: dict[str, Any] = {}
        for a in arm_names:
            s = summary.get(a) or ArmMetrics(name, [a]).summary()[a]
            ctr_ok = s["attributed"] <= s["shown"]
            if not ctr_ok:
                warnings.append(
                    f"{name}/{a}: {s['attributed']} attributed interactions for {s['shown']} "
                    f"decisions: count at most one per decision for click-through to be a rate"
                )
            arms[a] = {
                "share": exp.shares.get(a, 0.0),
                **{k: v for k, v in s.items() if not k.endswith("_var")},
                "conversion_ci": proportion_ci(s["conversions"], s["sessions"], alpha),
                "return_rate_ci": proportion_ci(s["returning"], s["sessions"], alpha),
                "ctr_ci": proportion_ci(s["attributed"], s["shown"], alpha) if ctr_ok else None,
                "series": merged.series(a),
            }
        control = exp.control
        c = summary.get(control)
        comparisons: dict[str, Any] = {}
        for j, a in enumerate(x for x in arm_names if x != control):
            t = summary.get(a)
            if c is None or t is None:
                comparisons[a] = {"note": "no sessions in one of the arms"}
                continue
            cmp: dict[str, Any] = {}
            for metric, num, den in _RATES:
                cmp[metric] = compare_proportions(c[num], c[den], t[num], t[den], alpha)
            if c["attributed"] <= c["shown"] and t["attributed"] <= t["shown"]:
                cmp["ctr"] = compare_proportions(
                    c["attributed"], c["shown"], t["attributed"], t["shown"], alpha
                )
            else:
                cmp["ctr"] = compare_proportions(0, 0, 0, 0, alpha) | {
                    "note": "more attributed interactions than decisions: not a rate"
                }
            rev_c, dep_c = merged.reservoir(control)
            rev_t, dep_t = merged.reservoir(a)
            samples = {"revenue": (rev_c, rev_t), "depth": (dep_c, dep_t)}
            for k, (metric, mean_key, var_key) in enumerate(_MEANS):
                cmp[metric] = {
                    "welch": compare_means(
                        c[mean_key] or 0.0,
                        c[var_key],
                        c["sessions"],
                        t[mean_key] or 0.0,
                        t[var_key],
                        t["sessions"],
                        alpha,
                    ),
                    "bootstrap": bootstrap_diff(
                        samples[metric][0],
                        samples[metric][1],
                        n_boot=n_boot,
                        seed=seed + 1_000 * i + 10 * j + k,
                        alpha=alpha,
                    ),
                }
            comparisons[a] = cmp
        shares = exp.shares
        srm_users = sample_ratio_mismatch({a: arms[a]["new_users"] for a in arm_names}, shares)
        srm_users["unit"] = "users (first sessions)"
        srm_sessions = sample_ratio_mismatch({a: arms[a]["sessions"] for a in arm_names}, shares)
        srm_sessions["unit"] = "sessions"
        entry = {
            "name": name,
            "placements": list(exp.placements),
            "control": control,
            "mode": exp_mode,
            "shards": len(shards),
            "first_ts": merged.first_ts,
            "last_ts": merged.last_ts,
            "alpha": alpha,
            "arms": arms,
            "comparisons": comparisons,
            "srm": srm_users,
            "srm_sessions": srm_sessions,
        }
        entry["reading"] = _reading(entry)
        experiments[name] = entry
    for name in metrics:
        if name not in config.experiments:
            warnings.append(f"metrics for experiment {name!r}, which the config does not list")

    bandit_out: dict[str, Any] = {}
    names = list(config.bandits) + [b for b in bandits if b not in config.bandits]
    for name in names:
        shards = list(bandits.get(name, []))
        if not shards:
            b = config.bandits[name]
            merged_b = BanditTuner.merge([b.make().to_dict()]) | {"shards": 0}
        else:
            merged_b = BanditTuner.merge(shards)
            if name not in config.bandits:
                warnings.append(f"state for bandit {name!r}, which the config does not list")
        n = merged_b["n_pulls"]
        merged_b["pull_share"] = {a: (p / n if n else None) for a, p in merged_b["pulls"].items()}
        merged_b["reading"] = _bandit_reading(merged_b)
        bandit_out[name] = merged_b
    return {"version": 1, "experiments": experiments, "bandits": bandit_out, "warnings": warnings}


# --- reading ------------------------------------------------------------------------------


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100.0 * x:.{digits}f}%"


def _signed_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:+.1f}%"


def _p(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _p_eq(x: float | None) -> str:
    return "p n/a" if x is None else "p<0.001" if x < 0.001 else f"p={x:.3f}"


def _fixed(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _sig_outcomes(entry: Mapping[str, Any]) -> list[str]:
    """Outcome metrics (not click-through) that differ from control at alpha."""
    found = []
    for arm, cmp in entry["comparisons"].items():
        for metric in ("conversion", "return_rate", "revenue", "depth"):
            r = cmp.get(metric)
            if r is None:
                continue
            r = r.get("welch", r)
            if r.get("significant"):
                found.append(
                    f"{arm} {_LABELS[metric]} ({_signed_pct(r.get('lift'))}, "
                    f"{_p_eq(r.get('p_value'))})"
                )
    return found


def _ctr_text(entry: Mapping[str, Any]) -> str:
    control = entry["control"]
    c_ctr = entry["arms"][control]["ctr"]
    bits = []
    for arm, cmp in entry["comparisons"].items():
        a = entry["arms"][arm]
        if not a["sessions"]:
            bits.append(f"{arm} has no sessions yet")
            continue
        if not a["shown"]:
            bits.append(f"{arm} shows no recommendations, so it has no click-through")
            continue
        r = cmp.get("ctr", {})
        verdict = "differs" if r.get("significant") else "does not differ significantly"
        bits.append(
            f"{arm} {_pct(a['ctr'])} vs {control} {_pct(c_ctr)} "
            f"({_signed_pct(r.get('lift'))}, {_p_eq(r.get('p_value'))}: {verdict})"
        )
    return "; ".join(bits) if bits else "no arm to compare"


def _reading(entry: Mapping[str, Any]) -> str:
    """One line in plain words: what the numbers of an experiment can and cannot mean."""
    arms = entry["arms"]
    total = sum(a["sessions"] for a in arms.values())
    if total == 0:
        return f"No sessions recorded for {entry['name']} yet: nothing to compare."
    alpha = entry["alpha"]
    level = f"{100 * alpha:g}%"
    parts: list[str] = []
    mode = entry.get("mode")
    users, sessions = entry["srm"], entry["srm_sessions"]
    # Users (first sessions) cannot depend on the arm; sessions can, once users see the arms.
    srm = users if users["mismatch"] is not None else sessions
    if not srm.get("mismatch") and mode != "live" and sessions.get("mismatch"):
        srm = sessions
    if srm.get("mismatch"):
        parts.append(
            f"SAMPLE RATIO MISMATCH ({srm['unit']} per arm are off the configured shares, "
            f"{_p_eq(srm['p_value'])}): assignment or logging is broken, so do not read the "
            f"differences below as effects"
        )
    sig = _sig_outcomes(entry)
    if mode == "replay":
        s = (
            "Offline replay: the logged users never saw rtp's decisions, so conversion, revenue, "
            "depth and return rate can differ between arms only by chance"
        )
        if sig:
            s += (
                f" — yet {', '.join(sig)} at the {level} level, which here means chance over "
                "many comparisons or an assignment problem, not an effect"
            )
        else:
            s += f" (none does at the {level} level, as expected)"
        s += (
            "; only attributed click-through can differ by arm, and it measures how well each "
            "arm's recommendations anticipated what users did next, not an effect on them: "
            + _ctr_text(entry)
        )
        parts.append(s)
    elif mode == "live":
        s = "Live: users saw their arm's decisions, so differences from the control are effects"
        if sig:
            s += f": {', '.join(sig)} at the {level} level"
        else:
            s += f", but no outcome differs from {entry['control']} at the {level} level yet"
        s += "; click-through: " + _ctr_text(entry)
        if sessions.get("mismatch") and users.get("mismatch") is False:
            s += (
                "; sessions per arm are off the shares while users are not: the arms change how "
                "often users come back (an effect, not a sample ratio mismatch)"
            )
        parts.append(s)
    else:
        parts.append(
            "Mode unknown: in an offline replay only click-through can differ by arm (users "
            "never saw the decisions), live every metric can; outcomes differing at the "
            f"{level} level: {', '.join(sig) if sig else 'none'}; click-through: "
            + _ctr_text(entry)
        )
    smallest = min(a["sessions"] for a in arms.values() if a["share"] > 0)
    if smallest == 0:
        parts.append("an arm has no sessions yet, so it cannot be compared")
    elif smallest < 1_000:
        parts.append(f"few sessions (smallest arm {smallest:,}), so the intervals are wide")
    return ". ".join(parts) + "."


def _bandit_reading(b: Mapping[str, Any]) -> str:
    n = b["n_pulls"]
    if not n:
        return f"Bandit {b['name']} has not been pulled yet."
    top = max(b["pulls"], key=lambda a: b["pulls"][a])
    best = b["best_arm"]
    text = (
        f"{b['policy']} on {b['placement']} put {b['pull_share'][top]:.0%} of {n:,} pulls on "
        f"{top} (mean reward {_fmt(b['mean'][top])})"
    )
    if best is not None and best != top:
        text += f"; the best empirical mean so far is {best} ({_fmt(b['mean'][best])})"
    text += f"; estimated cumulative regret {_fmt(b['regret_est'])}"
    if b.get("regret_true") is not None:
        text += f" (true {_fmt(b['regret_true'])})"
    return text + "."


# --- text ---------------------------------------------------------------------------------


def _ci_text(ci: Sequence[float | None] | None, pct: bool) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    if pct:
        return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def render_text(report: Mapping[str, Any]) -> str:
    """The report as readable tables (what ``rtp experiments report`` prints)."""
    out: list[str] = []
    for name, e in report["experiments"].items():
        out.append(
            f"experiment {name}  (placements {', '.join(e['placements'])}; control "
            f"{e['control']}; mode {e['mode'] or 'unknown'}; {e['shards']} shard(s); "
            f"{_when(e['first_ts'])} .. {_when(e['last_ts'])} UTC)"
        )
        rows = [
            [
                "arm",
                "share",
                "sessions",
                "conv",
                "95% CI (%)",
                "rev/sess",
                "depth",
                "return",
                "shown",
                "CTR",
                "95% CI (%)",
            ]
        ]
        for a, s in e["arms"].items():
            rows.append(
                [
                    a,
                    f"{s['share']:.2f}",
                    f"{s['sessions']:,}",
                    _pct(s["conversion"]),
                    _ci_text(s["conversion_ci"], True),
                    _fixed(s["revenue_per_session"]),
                    _fixed(s["depth"]),
                    _pct(s["return_rate"], 1),
                    f"{s['shown']:,}",
                    _pct(s["ctr"]),
                    _ci_text(s["ctr_ci"], True),
                ]
            )
        out.extend("  " + line for line in _table(rows))
        notes = [f"  {arm}: {c['note']}" for arm, c in e["comparisons"].items() if "note" in c]
        tested = {arm: c for arm, c in e["comparisons"].items() if "note" not in c}
        if tested:
            out.append("")
            rows = [
                [
                    f"vs {e['control']}",
                    "metric",
                    "abs lift",
                    "95% CI",
                    "rel lift",
                    "95% CI (%)",
                    "p",
                    "test",
                ]
            ]
            for arm, cmp in tested.items():
                label = arm
                for metric in ("conversion", "return_rate", "ctr", "revenue", "depth"):
                    results = cmp[metric]
                    tests = (
                        [("welch", results["welch"]), ("bootstrap", results["bootstrap"])]
                        if "welch" in results
                        else [("z", results)]
                    )
                    rate = "welch" not in results
                    for test, r in tests:
                        diff = r.get("diff")
                        if rate:
                            abs_text = "n/a" if diff is None else f"{100 * diff:+.2f}pp"
                        else:
                            abs_text = "n/a" if diff is None else f"{diff:+,.3g}"
                        lift_ci = r.get("lift_ci")
                        rows.append(
                            [
                                label,
                                _LABELS[metric],
                                abs_text,
                                _ci_text(r.get("diff_ci"), rate),
                                _signed_pct(r.get("lift")),
                                _ci_text(lift_ci, True) if lift_ci else "",
                                _p(r.get("p_value")),
                                test,
                            ]
                        )
                        label = ""
            out.extend("  " + line for line in _table(rows))
        out.extend(notes)
        for key in ("srm", "srm_sessions"):
            srm = e[key]
            verdict = {True: "MISMATCH", False: "ok", None: "not testable"}[srm["mismatch"]]
            if key == "srm_sessions" and srm["mismatch"] and e["mode"] == "live":
                verdict = "off the shares (live, the arms can change how often users return)"
            observed = ", ".join(f"{a} {n:,}" for a, n in srm["observed"].items())
            stat = "" if srm["statistic"] is None else f"chi2 {srm['statistic']:.2f}, "
            out.append(
                f"  SRM on {srm['unit']}: {observed}; {stat}p {_p(srm['p_value'])}: {verdict}"
            )
        out.append(f"  reading: {e['reading']}")
        out.append("")
    for name, b in report["bandits"].items():
        out.append(
            f"bandit {name}  (placement {b['placement']}; policy {b['policy']}; "
            f"{b['shards']} shard(s); {b['n_pulls']:,} pulls)"
        )
        rows = [["arm", "pulls", "share", "rewards", "reward", "mean"]]
        for a in b["arms"]:
            rows.append(
                [
                    a,
                    f"{b['pulls'][a]:,}",
                    _pct(b["pull_share"][a], 1),
                    f"{b['updates'][a]:,}",
                    _fixed(b["reward"][a], 1),
                    _fixed(b["mean"][a], 3),
                ]
            )
        out.extend("  " + line for line in _table(rows))
        out.append(f"  reading: {b['reading']}")
        out.append("")
    for w in report.get("warnings", []):
        out.append(f"warning: {w}")
    if not report["experiments"] and not report["bandits"]:
        out.append("no experiments or bandits configured")
    return "\n".join(out).rstrip() + "\n"


# --- plot ---------------------------------------------------------------------------------


def plot(report: Mapping[str, Any], path: str | Path) -> None:
    """Draw the report to ``path`` (PNG, Agg; no display needed).

    Per experiment: conversion and click-through per arm with their intervals, and both rates
    over event time (cumulative); per bandit: pulls per arm and regret over pulls.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    exps = list(report["experiments"].values())
    bandits = list(report["bandits"].values())
    rows = 2 * len(exps) + len(bandits)
    fig = Figure(figsize=(12, 3.6 * max(rows, 1)), layout="constrained")
    FigureCanvasAgg(fig)
    if rows == 0:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no experiments or bandits", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path, dpi=100)
        return
    axes = fig.subplots(rows, 2, squeeze=False)
    r = 0
    for e in exps:
        names = list(e["arms"])
        for col, (key, ci_key, title) in enumerate(
            (("conversion", "conversion_ci", "conversion"), ("ctr", "ctr_ci", "click-through"))
        ):
            ax = axes[r][col]
            vals = [100 * (e["arms"][a][key] or 0.0) for a in names]
            lo, hi = [], []
            for a, v in zip(names, vals, strict=True):
                ci = e["arms"][a][ci_key]
                ok = ci and ci[0] is not None and ci[1] is not None
                lo.append(v - 100 * ci[0] if ok else 0.0)
                hi.append(100 * ci[1] - v if ok else 0.0)
            colors = ["tab:gray" if a == e["control"] else "tab:blue" for a in names]
            ax.bar(names, vals, yerr=[lo, hi], capsize=4, color=colors)
            for x, arm in enumerate(names):
                if e["arms"][arm][key] is None:
                    ax.annotate("n/a", (x, 0), ha="center", va="bottom", fontsize="small")
            ax.set_title(f"{e['name']}: {title} per arm (95% CI)")
            ax.set_ylabel("%")
        for col, (num, den, title) in enumerate(
            (("conversions", "sessions", "conversion"), ("attributed", "shown", "click-through"))
        ):
            ax = axes[r + 1][col]
            drew = False
            for a in names:
                pts = [p for p in e["arms"][a]["series"] if p[den]]
                if not pts:
                    continue
                xs = [datetime.fromtimestamp(p["ts"], tz=timezone.utc) for p in pts]
                ax.plot(xs, [100 * p[num] / p[den] for p in pts], label=a)
                drew = True
            ax.set_title(f"{e['name']}: cumulative {title} by event time")
            ax.set_ylabel("%")
            if drew:
                ax.legend(fontsize="small")
                ax.tick_params(axis="x", labelrotation=20)
            else:
                ax.text(
                    0.5, 0.5, "no time series", ha="center", va="center", transform=ax.transAxes
                )
        r += 2
    for b in bandits:
        ax = axes[r][0]
        ax.bar(b["arms"], [b["pulls"][a] for a in b["arms"]], color="tab:green")
        for i, a in enumerate(b["arms"]):
            ax.annotate(
                f"mean {_fmt(b['mean'][a])}",
                (i, b["pulls"][a]),
                ha="center",
                va="bottom",
                fontsize="small",
            )
        ax.set_title(f"bandit {b['name']} ({b['policy']}): pulls per arm")
        ax = axes[r][1]
        drew = False
        for k, series in enumerate(b.get("series_by_shard", [])):
            if not series:
                continue
            xs = [p["pulls"] for p in series]
            color = f"C{k % 10}"
            ax.plot(
                xs, [p["regret_est"] for p in series], color=color, label=f"shard {k} estimated"
            )
            if any(p.get("regret_true") is not None for p in series):
                ax.plot(
                    xs,
                    [p["regret_true"] for p in series],
                    "--",
                    color=color,
                    label=f"shard {k} true",
                )
            drew = True
        ax.set_title(f"bandit {b['name']}: cumulative regret")
        ax.set_xlabel("pulls")
        if drew:
            ax.legend(fontsize="small")
        else:
            ax.text(
                0.5, 0.5, "no regret series yet", ha="center", va="center", transform=ax.transAxes
            )
        r += 1
    fig.savefig(path, dpi=100)


# --- CLI ----------------------------------------------------------------------------------


def group_meta(entries: Mapping[str, Any], prefix: str) -> dict[str, list[dict[str, Any]]]:
    """``{"exp:e:0": d0, "exp:e:1": d1}`` -> ``{"e": [d0, d1]}`` (shards in order).

    Names may come with or without ``prefix``; values may be dicts or JSON bytes/str.

    >>> group_meta({"exp:e:1": {"n": 1}, "exp:e:0": {"n": 0}, "f:0": {"n": 2}}, "exp:")
    {'e': [{'n': 0}, {'n': 1}], 'f': [{'n': 2}]}
    """
    import orjson

    def shard_key(item: tuple[str, Any]) -> tuple[str, int, str]:
        name, _, shard = item[0].rpartition(":")
        return (name, int(shard) if shard.isdigit() else -1, shard)

    grouped: dict[str, list[dict[str, Any]]] = {}
    rows = []
    for key, value in entries.items():
        k = key[len(prefix) :] if key.startswith(prefix) else key
        if ":" not in k:
            k = f"{k}:0"
        rows.append((k, value))
    for k, value in sorted(rows, key=shard_key):
        name = k.rpartition(":")[0]
        if isinstance(value, (bytes, bytearray, str)):
            value = orjson.loads(value)
        grouped.setdefault(name, []).append(dict(value))
    return grouped


def load_from_store(url: str) -> tuple[Metrics, Bandits]:
    """Read every ``exp:*`` and ``bandit:*`` meta key from the Redis at ``url``."""
    from rtp.config import Settings
    from rtp.store.store import Store

    with Store.from_url(url, Settings.from_env()) as store:
        exp = store.meta_prefix("exp:")
        ban = store.meta_prefix("bandit:")
    return group_meta(exp, "exp:"), group_meta(ban, "bandit:")


def run_report(args: argparse.Namespace, load: Callable[[], tuple[Metrics, Bandits]]) -> int:
    """Run ``rtp experiments report`` with ``load() -> (metrics, bandits)``; the exit code."""
    import orjson

    from rtp.config import Settings

    def fail(msg: str, code: int = 2) -> int:
        print(f"rtp experiments report: {msg}", file=sys.stderr)
        return code

    path = getattr(args, "config", None) or Settings.from_env().experiments_file
    if not path:
        return fail("no experiments config: pass --config FILE.toml or set RTP_EXPERIMENTS_FILE")
    try:
        config = load_experiments(path)
    except RtpError as e:
        return fail(str(e))
    wanted = getattr(args, "experiment", None)
    if wanted:
        if wanted in config.experiments:
            exp = config.experiments[wanted]
            bandits = [b for b in config.bandits.values() if b.placement in exp.placements]
            config = ExperimentSet([exp], bandits, source=config.source)
        elif wanted in config.bandits:
            config = ExperimentSet([], [config.bandits[wanted]], source=config.source)
        else:
            known = ", ".join([*config.experiments, *config.bandits]) or "none"
            return fail(f"{path} has no experiment or bandit {wanted!r} (it has: {known})")
    try:
        metrics, bandit_state = load()
    except RtpError as e:
        return fail(f"cannot read experiment metrics: {e}", 1)
    metrics = {k: v for k, v in metrics.items() if k in config.experiments or not wanted}
    bandit_state = {k: v for k, v in bandit_state.items() if k in config.bandits or not wanted}
    report = build_report(config, metrics, bandit_state)
    sys.stdout.write(render_text(report))
    if getattr(args, "json", None):
        Path(args.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        print(f"wrote {args.json}", file=sys.stderr)
    if getattr(args, "plot", None):
        plot(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
