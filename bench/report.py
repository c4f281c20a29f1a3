"""The bench's verdicts, its readable table, its JSON and its chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench import console, outcome_reports, simulate
from bench.baseline import BASELINE_VARIANTS, SAME_WORK
from kindly.programs.dev_server import bundled_binary

MAX_ACTIONS_PER_TOUCHPOINT = 3.0
"""Check 1: Temporal actions per SMS touchpoint (Kindly's lifecycle, the start excluded)."""
THROUGHPUT_RATIO = 0.9
"""Check 2: Kindly's touchpoints per second at least this share of ``SAME_WORK``'s (bare Temporal with
the rate-limited SMS queue and the search-attribute upsert)."""
IMPORT_SAME_WORK = "bare_with_attributes"
"""The bare starts doing the work Kindly's import is required to do: carrying its search attributes."""
IMPORT_RATIO = 0.85
"""Check 4: Kindly's bulk import at least this share of ``IMPORT_SAME_WORK``'s starts per second."""
MEMORY_GROWTH = 0.10
"""Check 5, flat: VmRSS with all open accounts at most this much above VmRSS at the first checkpoint."""
PLAIN = "baseline"
"""Plain bare Temporal (one activity and one timer per touchpoint): information beside the checks."""


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    try:
        temporal = subprocess.run(
            [bundled_binary("temporal"), "--version"], capture_output=True, text=True, check=False, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        temporal = "unknown"
    from importlib.metadata import version

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "ram_gib": round(memory_kib / 1024 / 1024, 1),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": temporal,
    }


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


def _ratio(value: float | None, reference: float | None) -> float | None:
    return round(value / reference, 3) if value is not None and reference else None


def _times(ratio: float | None) -> str:
    return f"{ratio:.2f}" if ratio is not None else ""


def _cpu_ms(rounds: list[dict[str, Any]], system: str, process: str) -> float | None:
    """Mean CPU ms per touchpoint of ``process`` in ``system``'s throughput rounds (None: not measured)."""
    values = [r[system]["cpu_ms_per_touchpoint"].get(process) for r in rounds if system in r]
    return _mean(values) if values and None not in values else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Add the means, ratios, PASS/FAIL checks and the information beside them to the results."""
    checks: list[dict[str, Any]] = []
    information: list[dict[str, Any]] = []
    if "costs" in results:
        c = results["costs"]
        life = c["kindly"]["lifecycle"]
        actions = life["actions_per_touchpoint"]
        bare = [
            f"{BASELINE_VARIANTS[name].label}: {c[name]['lifecycle']['actions_per_touchpoint']}"
            for name in (PLAIN, SAME_WORK)
            if name in c
        ]
        checks.append(
            {
                "check": f"<= {MAX_ACTIONS_PER_TOUCHPOINT:g} Temporal actions per SMS touchpoint "
                f"(Kindly, lifecycle of {life['touchpoints'] // max(life['histories'], 1)} touchpoints, "
                "start excluded)",
                "measured": f"{actions} actions/touchpoint, plus {life.get('start_actions_per_run', 0)} "
                f"once per run at its start ({'; '.join(bare)})",
                "pass": life["histories"] > 0 and actions <= MAX_ACTIONS_PER_TOUCHPOINT,
            }
        )
    if "throughput" in results:
        t = results["throughput"]
        rounds = t["rounds"]
        rates = {
            system: _mean([r[system]["touchpoints_per_second"] for r in rounds])
            for system in rounds[0]
            if all(system in r for r in rounds)
        }
        kindly, same, plain = rates["kindly"], rates.get(SAME_WORK), rates.get(PLAIN)
        ratio = _ratio(kindly, same) or 0.0
        complete = all(r[s]["complete"] for r in rounds for s in ("kindly", SAME_WORK) if s in r)
        t.update(
            baseline_touchpoints_per_second=plain,
            same_work_touchpoints_per_second=same,
            kindly_touchpoints_per_second=kindly,
            ratio=ratio,
            ratio_to_plain_bare=_ratio(kindly, plain),
        )
        t["variants"] = {
            name: {
                "label": variant.label,
                "chart_label": variant.chart_label,
                "touchpoints_per_second": rates[name],
                "ratio_to_baseline": _ratio(rates[name], plain),
                "kindly_ratio_to_it": _ratio(kindly, rates[name]),
                "cpu_ms_per_touchpoint": {
                    process: _cpu_ms(rounds, name, process)
                    for process in rounds[0][name]["cpu_ms_per_touchpoint"]
                },
            }
            for name, variant in BASELINE_VARIANTS.items()
            if name != PLAIN and name in rates
        }
        checks.append(
            {
                "check": f"Kindly touchpoint throughput >= {THROUGHPUT_RATIO:g} x "
                f"{BASELINE_VARIANTS[SAME_WORK].label}",
                "measured": f"{kindly} vs {same} touchpoints/s = {ratio:.2f} x "
                f"(plain bare Temporal {plain}: {_times(_ratio(kindly, plain))} x)",
                "pass": same is not None and complete and ratio >= THROUGHPUT_RATIO,
            }
        )
    server = _server_cost(results)
    if server is not None:
        results["server_cost_per_touchpoint"] = server
        parts = [
            _beside(server, figure, unit)
            for figure, unit in (
                ("server_cpu_ms", "ms server CPU"),
                ("history_events", "history events"),
                ("history_bytes", "history bytes"),
            )
        ]
        information.append(
            {
                "about": "server cost per touchpoint (no pass/fail), Kindly vs "
                f"{BASELINE_VARIANTS[SAME_WORK].label}",
                "measured": "; ".join(part for part in parts if part),
            }
        )
    if "import" in results:
        i = results["import"]
        rounds = i["rounds"]
        for system in [name for name in ("bare", IMPORT_SAME_WORK, "kindly") if name in rounds[0]]:
            i[system] = {
                "starts_per_second": _mean([r[system]["starts_per_second"] for r in rounds]),
                "started": sum(r[system]["started"] for r in rounds),
                "failed": sum(r[system]["failed"] for r in rounds),
                "concurrency": rounds[0][system]["concurrency"],
            }
        kindly = i["kindly"]["starts_per_second"]
        same = i[IMPORT_SAME_WORK]["starts_per_second"] if IMPORT_SAME_WORK in i else None
        plain = i["bare"]["starts_per_second"] if "bare" in i else None
        ratio = _ratio(kindly, same) or 0.0
        i.pop("ratio_to_bare_with_attributes", None)  # the reference is now ``ratio``'s
        i.update(ratio=ratio, ratio_to_plain_bare=_ratio(kindly, plain))
        checks.append(
            {
                "check": f"bulk import >= {IMPORT_RATIO:g} x bare starts carrying the same search attributes",
                "measured": f"{kindly} vs {same} starts/s = {ratio:.2f} x "
                f"(plain bare starts {plain}: {_times(_ratio(kindly, plain))} x)",
                "pass": same is not None and ratio >= IMPORT_RATIO and i["kindly"]["failed"] == 0,
            }
        )
    if "memory" in results:
        points = [p for p in results["memory"]["points"] if p["open_accounts"] > 0]
        first, last = points[0], points[-1]
        growth = round(last["rss_mib"] / first["rss_mib"] - 1, 3)
        results["memory"]["growth_first_to_last_checkpoint"] = growth
        checks.append(
            {
                "check": f"worker memory flat (VmRSS +<= {MEMORY_GROWTH:.0%} from "
                f"{first['open_accounts']} to {last['open_accounts']} open accounts)",
                "measured": f"{first['rss_mib']} -> {last['rss_mib']} MiB ({growth:+.1%}), "
                f"peak {last['hwm_mib']} MiB",
                "pass": growth <= MEMORY_GROWTH,
            }
        )
    if "herd" in results:
        herd = results["herd"]
        checks.append(
            {
                "check": f"herd: gateway never above {herd['sms_rate_limit_per_second']:g} SMS/s",
                "measured": f"peak {herd['peak_per_calendar_second']}/s (any 1 s interval: "
                f"{herd['peak_in_any_1s_interval']}), {herd['messages_seen']}/{herd['accounts']} "
                f"drained in {herd['seconds_to_drain']} s",
                "pass": herd["messages_seen"] >= herd["accounts"]
                and herd["peak_per_calendar_second"] <= herd["sms_rate_limit_per_second"]
                and herd["peak_in_any_1s_interval"] <= herd["sms_rate_limit_per_second"],
            }
        )
    if "reports" in results:
        outcome_reports.summarize(results["reports"], checks, information)
    if "simulate" in results:
        simulate.summarize(results["simulate"], checks, information)
    if "console" in results:
        console.summarize(results["console"], information)
    results["checks"] = checks
    results["information"] = information
    return results


def _server_cost(results: dict[str, Any]) -> dict[str, Any] | None:
    """Per touchpoint, for plain bare Temporal, ``SAME_WORK`` and Kindly: the dev server's CPU in the
    throughput drain, and the history events and serialized bytes of the costs' lifecycle; with
    Kindly's ratios to the two bare systems. None when neither section ran."""
    if "throughput" not in results and "costs" not in results:
        return None
    systems: dict[str, dict[str, float | None]] = {}
    for system in (PLAIN, SAME_WORK, "kindly"):
        life = results.get("costs", {}).get(system, {}).get("lifecycle", {})
        rounds = results["throughput"]["rounds"] if "throughput" in results else []
        systems[system] = {
            "server_cpu_ms": _cpu_ms(rounds, system, "temporal_server") if rounds else None,
            "history_events": life.get("history_events_per_touchpoint"),
            "history_bytes": life.get("history_bytes_per_touchpoint"),
        }
    figures = ("server_cpu_ms", "history_events", "history_bytes")
    return {
        "systems": systems,
        "kindly_ratio_to_same_work": {
            figure: _ratio(systems["kindly"][figure], systems[SAME_WORK][figure]) for figure in figures
        },
        "kindly_ratio_to_plain_bare": {
            figure: _ratio(systems["kindly"][figure], systems[PLAIN][figure]) for figure in figures
        },
    }


def _beside(server: dict[str, Any], figure: str, unit: str) -> str:
    systems = server["systems"]
    kindly = systems["kindly"][figure]
    if kindly is None:
        return ""
    ratio = server["kindly_ratio_to_same_work"][figure]
    same, plain = (systems[name][figure] for name in (SAME_WORK, PLAIN))
    return f"{kindly} vs {_shown(same)} {unit} ({_times(ratio) or 'n/a'} x; plain bare {_shown(plain)})"


def _shown(value: float | None) -> str:
    return "n/a" if value is None else str(value)


WIDTHS = (46, 14, 16, 12, 12, 12)


def _row(*cells: object) -> str:
    return "  ".join(
        ("" if cell is None else str(cell)).ljust(width) for cell, width in zip(cells, WIDTHS, strict=False)
    ).rstrip()


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    m = results["machine"]
    lines.append(
        f"Machine: {m['nproc']} CPU(s), {m['cpu_model']}, {m['ram_gib']} GiB RAM; {m['temporal_cli']}"
    )
    lines.append(f"Parameters: {json.dumps(results['parameters'])}")
    lines.append("")
    if {"throughput", "costs", "import"} & results.keys():  # the sections beside bare Temporal
        lines.append(
            "Columns: plain bare Temporal (one activity and one timer per touchpoint; plain starts); bare "
            "doing the same work (SMS on a rate-limited queue + search-attribute upsert; starts carrying the "
            "search attributes); Kindly; Kindly's ratios to the two."
        )
        lines.append(_row("", "plain bare", "bare, same work", "Kindly", "Kindly/same", "Kindly/plain"))
        lines.append(_row(*("-" * width for width in WIDTHS)))

    def compared(label: str, plain: float | None, same: float | None, kindly: float | None) -> None:
        lines.append(
            _row(label, plain, same, kindly, _times(_ratio(kindly, same)), _times(_ratio(kindly, plain)))
        )

    if "throughput" in results:
        t = results["throughput"]
        compared(
            "touchpoints/s (dev server, backlog drain)",
            t["baseline_touchpoints_per_second"],
            t["same_work_touchpoints_per_second"],
            t["kindly_touchpoints_per_second"],
        )
        for name, variant in t.get("variants", {}).items():
            if name != SAME_WORK:
                lines.append(
                    f"  {variant['label']}: {variant['touchpoints_per_second']} touchpoints/s "
                    f"({_times(variant['ratio_to_baseline'])} x plain; Kindly "
                    f"{_times(variant['kindly_ratio_to_it'])} x it)"
                )
        first = t["rounds"][0]
        compared(
            "worker peak RSS in that run (MiB)",
            *(first[s]["worker_peak_rss_mib"] if s in first else None for s in (PLAIN, SAME_WORK, "kindly")),
        )
        for name, label in (
            ("temporal_server", "server CPU ms/touchpoint (dev server)"),
            ("worker", "worker CPU ms/touchpoint"),
            ("gateway", "gateway CPU ms/touchpoint"),
        ):
            compared(label, *(_cpu_ms(t["rounds"], s, name) for s in (PLAIN, SAME_WORK, "kindly")))
        compared(
            "actions, first touchpoint (dev server)",
            *(
                first[s]["first_touchpoint_cost_dev_server"]["actions_per_touchpoint"] if s in first else None
                for s in (PLAIN, SAME_WORK, "kindly")
            ),
        )
    if "costs" in results:
        c = results["costs"]
        lives = [c[s]["lifecycle"] if s in c else {} for s in (PLAIN, SAME_WORK, "kindly")]
        k = lives[2]
        compared(
            f"actions/touchpoint, {c['touchpoints']}-touchpoint lifecycle",
            *(life.get("actions_per_touchpoint") for life in lives),
        )
        for kind in k["actions_by_kind_per_touchpoint"]:
            values = [life.get("actions_by_kind_per_touchpoint", {}).get(kind) for life in lives]
            if any(values):
                lines.append(_row(f"  {kind}", *values))
        for label, key in (
            ("  + workflow start (per touchpoint)", "workflow_starts_per_touchpoint"),
            (
                "  not actions: TemporalChangeVersion upserts",
                "exempt_temporal_change_version_upserts_per_touchpoint",
            ),
            ("  local-activity markers/touchpoint", "local_activity_markers_per_touchpoint"),
        ):
            lines.append(_row(label, *(life.get(key) for life in lives)))
        lines.append(
            _row(
                "  other markers/touchpoint",
                *(json.dumps(life["other_markers_per_touchpoint"]) if life else None for life in lives),
            )
        )
        if c["kindly"]["each_later_touchpoint"] is not None:
            compared(
                "actions, each touchpoint after the first",
                *(
                    c[s]["each_later_touchpoint"]["actions_per_touchpoint"] if s in c else None
                    for s in (PLAIN, SAME_WORK, "kindly")
                ),
            )
        compared(
            "history events/touchpoint (lifecycle)",
            *(life.get("history_events_per_touchpoint") for life in lives),
        )
        compared(
            "history bytes/touchpoint (lifecycle)",
            *(life.get("history_bytes_per_touchpoint") for life in lives),
        )
    if "import" in results:
        i = results["import"]
        compared(
            f"bulk import starts/s (concurrency {i['kindly']['concurrency']})",
            i["bare"]["starts_per_second"] if "bare" in i else None,
            i[IMPORT_SAME_WORK]["starts_per_second"] if IMPORT_SAME_WORK in i else None,
            i["kindly"]["starts_per_second"],
        )
    if "memory" in results:
        mem = results["memory"]
        lines.append("")
        lines.append(f"Worker memory, max_cached_workflows={mem['max_cached_workflows']}:")
        for point in mem["points"]:
            lines.append(
                f"  {point['open_accounts']:>7} open accounts: VmRSS {point['rss_mib']:>7} MiB, "
                f"VmHWM {point['hwm_mib']:>7} MiB"
            )
    if "herd" in results:
        h = results["herd"]
        lines.append("")
        lines.append(
            f"Herd: {h['accounts']} accounts, window opening at once, spread 0, SMS limit "
            f"{h['sms_rate_limit_per_second']:g}/s (task-queue rate "
            f"{h.get('sms_task_queue_rate_per_second', h['sms_rate_limit_per_second']):g}/s): drained "
            f"{h['messages_seen']} in {h['seconds_to_drain']} s (ideal "
            f"{h.get('ideal_seconds_to_drain_at_task_queue_rate', h['ideal_seconds_to_drain_at_limit'])} s); "
            f"peak {h['peak_per_calendar_second']}/s "
            f"(any 1 s interval {h['peak_in_any_1s_interval']}); Temporal dispatched at most "
            f"{h['dispatch_peak_per_calendar_second']}/s "
            f"(any 1 s interval {h['dispatch_peak_in_any_1s_interval']})"
        )
        delays = h.get("seconds_dispatch_to_gateway")
        if delays and delays["min"] is not None:
            lines.append(
                f"  dispatch to gateway: {delays['min']} s min, {delays['median']} s median, "
                f"{delays['p99']} s p99, {delays['max']} s max; a send caught up at most "
                f"{delays.get('max_catch_up_within_2s')} s on one dispatched up to 2 s before it"
            )
        spread = h.get("with_standard_spread")
        if spread:
            lines.append(
                f"  with the standard spread: {spread['accounts']} sends planned over "
                f"{spread['planned_span_minutes']} min, peak {spread['planned_peak_per_second']}/s, "
                f"{spread['planned_peak_per_minute']}/min"
            )
    if "simulate" in results:
        lines.extend(simulate.table_lines(results["simulate"]))
    if "console" in results:
        lines.extend(console.table_lines(results["console"]))
    lines.append("")
    for check in results["checks"]:
        lines.append(f"{'PASS' if check['pass'] else 'FAIL'}  {check['check']}: {check['measured']}")
    for info in results.get("information", []):
        lines.append(f"INFO  {info['about']}: {info['measured']}")
    return "\n".join(lines)


def _bars(ax: Any, names: list[str], values: list[float | None], title: str) -> None:
    """Bars of the bare systems in grey and Kindly (the last) in blue; missing values left out."""
    shown = [(name, value) for name, value in zip(names, values, strict=True) if value is not None]
    ax.bar(
        [name for name, _ in shown],
        [value for _, value in shown],
        color=["#888888"] * (len(shown) - 1) + ["#2a7ab0"],
    )
    ax.set_title(title)


def chart(results: dict[str, Any], path: Path) -> None:
    figure = Figure(figsize=(18, 13))
    FigureCanvasAgg(figure)  # the Agg backend: PNG without a display
    axes = figure.subplots(3, 3)
    three = ["plain bare", "bare +\nqueue + upsert", "Kindly"]

    ax = axes[0][0]
    if "throughput" in results:
        t = results["throughput"]
        names, values = ["plain bare"], [t["baseline_touchpoints_per_second"]]
        for variant in t.get("variants", {}).values():
            names.append(variant["chart_label"])
            values.append(variant["touchpoints_per_second"])
        names.append("Kindly")
        values.append(t["kindly_touchpoints_per_second"])
        _bars(ax, names, values, "SMS touchpoints per second (dev server)")
        same = t["same_work_touchpoints_per_second"]
        if same:
            ax.axhline(
                same * THROUGHPUT_RATIO,
                color="red",
                linestyle="--",
                label=f"check: {THROUGHPUT_RATIO:g} x bare + queue + upsert",
            )
            ax.legend()

    ax = axes[0][1]
    if "costs" in results:
        c = results["costs"]
        systems = [s for s in (PLAIN, SAME_WORK, "kindly") if s in c]
        labels = [three[(PLAIN, SAME_WORK, "kindly").index(s)] for s in systems]
        bottom = [0.0] * len(systems)
        for kind in c["kindly"]["lifecycle"]["actions_by_kind_per_touchpoint"]:
            values = [c[s]["lifecycle"]["actions_by_kind_per_touchpoint"][kind] for s in systems]
            if any(values):
                ax.bar(labels, values, bottom=bottom, label=kind)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.axhline(
            MAX_ACTIONS_PER_TOUCHPOINT,
            color="red",
            linestyle="--",
            label=f"check: <= {MAX_ACTIONS_PER_TOUCHPOINT:g}",
        )
        ax.legend(fontsize=8)
        ax.set_title(f"Temporal actions per touchpoint ({c['touchpoints']}-touchpoint lifecycle)")

    server = results.get("server_cost_per_touchpoint")
    for ax, figure_name, title in (
        (axes[0][2], "server_cpu_ms", "Dev-server CPU ms per touchpoint"),
        (axes[1][0], "history_events", "History events per touchpoint"),
        (axes[1][1], "history_bytes", "History bytes per touchpoint"),
    ):
        values = [server["systems"][s][figure_name] for s in (PLAIN, SAME_WORK, "kindly")] if server else []
        if values and values[-1] is not None:
            _bars(ax, three, values, title)
        else:
            ax.set_title(f"{title} (not measured in this run)")

    ax = axes[1][2]
    if "import" in results:
        i = results["import"]
        values = [i[s]["starts_per_second"] if s in i else None for s in ("bare", IMPORT_SAME_WORK, "kindly")]
        _bars(
            ax,
            ["plain bare starts", "bare starts with\nthe search attributes", "Kindly import"],
            values,
            "Bulk import: workflow starts per second",
        )
        if values[1]:
            ax.axhline(
                values[1] * IMPORT_RATIO,
                color="red",
                linestyle="--",
                label=f"check: {IMPORT_RATIO:g} x bare with attributes",
            )
            ax.legend()

    ax = axes[2][0]
    if "memory" in results:
        mem = results["memory"]
        points = mem["points"]
        ax.plot([p["open_accounts"] for p in points], [p["rss_mib"] for p in points], "o-", label="VmRSS")
        ax.plot([p["open_accounts"] for p in points], [p["hwm_mib"] for p in points], "s--", label="VmHWM")
        ax.set_xlabel("open accounts")
        ax.set_ylabel("MiB")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.set_title(f"Worker memory (max_cached_workflows={mem['max_cached_workflows']})")

    ax = axes[2][1]
    if "herd" in results:
        h = results["herd"]
        seconds = sorted((int(k), v) for k, v in h["per_second"].items())
        ax.bar(
            [s for s, _ in seconds],
            [v for _, v in seconds],
            width=1.0,
            color="#2a7ab0",
            label="at the gateway",
        )
        dispatched = sorted((int(k), v) for k, v in h["dispatch_per_second"].items())
        ax.step(
            [s for s, _ in dispatched],
            [v for _, v in dispatched],
            where="mid",
            color="black",
            label="dispatched by Temporal (activity started)",
        )
        ax.axhline(h["sms_rate_limit_per_second"], color="red", linestyle="--", label="SMS rate limit")
        ax.set_xlabel("seconds after the window opened")
        ax.set_ylabel("messages at the gateway")
        ax.legend()
        ax.set_title(f"Herd of {h['accounts']}: gateway messages per second")
    if "console" in results:
        console.draw(axes[2][2], results["console"])
    else:
        axes[2][2].axis("off")
    figure.suptitle("Kindly vs bare Temporal")
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=100)
