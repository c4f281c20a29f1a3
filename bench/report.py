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

from bench.baseline import BASELINE_VARIANTS
from kindly.programs.dev_server import bundled_binary

THROUGHPUT_RATIO = 0.9
MAX_ACTIONS_PER_TOUCHPOINT = 3.0
IMPORT_RATIO = 0.9
MEMORY_GROWTH = 0.10
"""Bounded: VmRSS with all open accounts at most this much above VmRSS at the first checkpoint."""


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


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Add the means, ratios and PASS/FAIL verdicts to the measured results."""
    targets: list[dict[str, Any]] = []
    if "throughput" in results:
        rounds = results["throughput"]["rounds"]
        base = _mean([r["baseline"]["touchpoints_per_second"] for r in rounds])
        kindly = _mean([r["kindly"]["touchpoints_per_second"] for r in rounds])
        ratio = round(kindly / base, 3) if base else 0.0
        complete = all(r[s]["complete"] for r in rounds for s in ("baseline", "kindly"))
        results["throughput"].update(
            baseline_touchpoints_per_second=base, kindly_touchpoints_per_second=kindly, ratio=ratio
        )
        variants = {}
        for name, variant in BASELINE_VARIANTS.items():
            if name != "baseline" and all(name in r for r in rounds):
                rate = _mean([r[name]["touchpoints_per_second"] for r in rounds])
                variants[name] = {
                    "label": variant.label,
                    "chart_label": variant.chart_label,
                    "touchpoints_per_second": rate,
                    "ratio_to_baseline": round(rate / base, 3) if base else 0.0,
                    "kindly_ratio_to_it": round(kindly / rate, 3) if rate else 0.0,
                    "cpu_ms_per_touchpoint": {
                        process: _mean([r[name]["cpu_ms_per_touchpoint"].get(process, 0.0) for r in rounds])
                        for process in rounds[0][name]["cpu_ms_per_touchpoint"]
                    },
                }
        results["throughput"]["variants"] = variants
        targets.append(
            {
                "target": "Kindly touchpoint throughput >= 0.9 x bare Temporal",
                "measured": f"{kindly} vs {base} touchpoints/s = {ratio:.2f} x",
                "pass": complete and ratio >= THROUGHPUT_RATIO,
            }
        )
    if "costs" in results:
        life = results["costs"]["kindly"]["lifecycle"]
        actions = life["actions_per_touchpoint"]
        targets.append(
            {
                "target": "<= 3 Temporal actions per SMS touchpoint "
                f"(Kindly, lifecycle of {life['touchpoints'] // max(life['histories'], 1)} touchpoints)",
                "measured": f"{actions} actions/touchpoint (bare: "
                f"{results['costs']['baseline']['lifecycle']['actions_per_touchpoint']})",
                "pass": life["histories"] > 0 and actions <= MAX_ACTIONS_PER_TOUCHPOINT,
            }
        )
    if "import" in results:
        rounds = results["import"]["rounds"]
        for system in [name for name in ("bare", "bare_with_attributes", "kindly") if name in rounds[0]]:
            results["import"][system] = {
                "starts_per_second": _mean([r[system]["starts_per_second"] for r in rounds]),
                "started": sum(r[system]["started"] for r in rounds),
                "failed": sum(r[system]["failed"] for r in rounds),
                "concurrency": rounds[0][system]["concurrency"],
            }
        bare = results["import"]["bare"]["starts_per_second"]
        kindly = results["import"]["kindly"]["starts_per_second"]
        ratio = round(kindly / bare, 3) if bare else 0.0
        results["import"]["ratio"] = ratio
        if "bare_with_attributes" in results["import"]:
            with_attributes = results["import"]["bare_with_attributes"]["starts_per_second"]
            results["import"]["ratio_to_bare_with_attributes"] = (
                round(kindly / with_attributes, 3) if with_attributes else 0.0
            )
        targets.append(
            {
                "target": "bulk import >= 0.9 x bare start rate",
                "measured": f"{kindly} vs {bare} starts/s = {ratio:.2f} x",
                "pass": ratio >= IMPORT_RATIO and results["import"]["kindly"]["failed"] == 0,
            }
        )
    if "memory" in results:
        points = [p for p in results["memory"]["points"] if p["open_accounts"] > 0]
        first, last = points[0], points[-1]
        growth = round(last["rss_mib"] / first["rss_mib"] - 1, 3)
        results["memory"]["growth_first_to_last_checkpoint"] = growth
        targets.append(
            {
                "target": f"worker memory bounded (VmRSS +<= {MEMORY_GROWTH:.0%} from "
                f"{first['open_accounts']} to {last['open_accounts']} open accounts)",
                "measured": f"{first['rss_mib']} -> {last['rss_mib']} MiB ({growth:+.1%}), "
                f"peak {last['hwm_mib']} MiB",
                "pass": growth <= MEMORY_GROWTH,
            }
        )
    if "herd" in results:
        herd = results["herd"]
        targets.append(
            {
                "target": f"herd: gateway never above {herd['sms_rate_limit_per_second']:g} SMS/s",
                "measured": f"peak {herd['peak_per_calendar_second']}/s (any 1 s interval: "
                f"{herd['peak_in_any_1s_interval']}), {herd['messages_seen']}/{herd['accounts']} "
                f"drained in {herd['seconds_to_drain']} s",
                "pass": herd["messages_seen"] >= herd["accounts"]
                and herd["peak_per_calendar_second"] <= herd["sms_rate_limit_per_second"]
                and herd["peak_in_any_1s_interval"] <= herd["sms_rate_limit_per_second"],
            }
        )
    results["targets"] = targets
    return results


def _row(*cells: object, widths: tuple[int, ...] = (44, 16, 16, 10)) -> str:
    return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False))


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    m = results["machine"]
    lines.append(
        f"Machine: {m['nproc']} CPU(s), {m['cpu_model']}, {m['ram_gib']} GiB RAM; {m['temporal_cli']}"
    )
    lines.append(f"Parameters: {json.dumps(results['parameters'])}")
    lines.append("")
    lines.append(_row("", "bare Temporal", "Kindly", "ratio"))
    lines.append(_row("-" * 44, "-" * 16, "-" * 16, "-" * 10))
    if "throughput" in results:
        t = results["throughput"]
        lines.append(
            _row(
                "touchpoints/s (dev server, backlog drain)",
                t["baseline_touchpoints_per_second"],
                t["kindly_touchpoints_per_second"],
                f"{t['ratio']:.2f}",
            )
        )
        for variant in t.get("variants", {}).values():
            lines.append(
                _row(
                    f"  {variant['label']}",
                    f"{variant['touchpoints_per_second']} ({variant['ratio_to_baseline']:.2f} x)",
                    t["kindly_touchpoints_per_second"],
                    f"{variant['kindly_ratio_to_it']:.2f}",
                )
            )
        first = t["rounds"][0]
        lines.append(
            _row(
                "worker peak RSS in that run (MiB)",
                first["baseline"]["worker_peak_rss_mib"],
                first["kindly"]["worker_peak_rss_mib"],
            )
        )
        for name in ("worker", "temporal_server", "gateway"):
            base_cpu = [r["baseline"]["cpu_ms_per_touchpoint"].get(name) for r in t["rounds"]]
            kindly_cpu = [r["kindly"]["cpu_ms_per_touchpoint"].get(name) for r in t["rounds"]]
            if None not in base_cpu + kindly_cpu:
                b, k = _mean(base_cpu), _mean(kindly_cpu)
                lines.append(_row(f"CPU ms/touchpoint: {name}", b, k, f"{k / b:.2f}" if b else ""))
        lines.append(
            _row(
                "actions, first touchpoint (dev server)",
                first["baseline"]["first_touchpoint_cost_dev_server"]["actions_per_touchpoint"],
                first["kindly"]["first_touchpoint_cost_dev_server"]["actions_per_touchpoint"],
            )
        )
    if "costs" in results:
        c = results["costs"]
        b, k = c["baseline"], c["kindly"]
        n = c["touchpoints"]
        lines.append(
            _row(
                f"actions/touchpoint, {n}-touchpoint lifecycle",
                b["lifecycle"]["actions_per_touchpoint"],
                k["lifecycle"]["actions_per_touchpoint"],
            )
        )
        for kind, value in k["lifecycle"]["actions_by_kind_per_touchpoint"].items():
            base_value = b["lifecycle"]["actions_by_kind_per_touchpoint"][kind]
            if value or base_value:
                lines.append(_row(f"  {kind}", base_value, value))
        life_b, life_k = b["lifecycle"], k["lifecycle"]
        for label, key in (
            ("  + workflow start (per touchpoint)", "workflow_starts_per_touchpoint"),
            (
                "  not actions: TemporalChangeVersion upserts",
                "exempt_temporal_change_version_upserts_per_touchpoint",
            ),
            ("  local-activity markers/touchpoint", "local_activity_markers_per_touchpoint"),
        ):
            lines.append(_row(label, life_b[key], life_k[key]))
        lines.append(
            _row(
                "  other markers/touchpoint",
                json.dumps(life_b["other_markers_per_touchpoint"]),
                json.dumps(life_k["other_markers_per_touchpoint"]),
            )
        )
        if k["each_later_touchpoint"] is not None:
            lines.append(
                _row(
                    "actions, each touchpoint after the first",
                    b["each_later_touchpoint"]["actions_per_touchpoint"],
                    k["each_later_touchpoint"]["actions_per_touchpoint"],
                )
            )
        lines.append(
            _row(
                "history events/touchpoint (lifecycle)",
                b["lifecycle"]["history_events_per_touchpoint"],
                k["lifecycle"]["history_events_per_touchpoint"],
            )
        )
    if "import" in results:
        i = results["import"]
        lines.append(
            _row(
                f"bulk import starts/s (concurrency {i['kindly']['concurrency']})",
                i["bare"]["starts_per_second"],
                i["kindly"]["starts_per_second"],
                f"{i['ratio']:.2f}",
            )
        )
        if "bare_with_attributes" in i:
            lines.append(
                _row(
                    "  bare with the same search attributes",
                    i["bare_with_attributes"]["starts_per_second"],
                    i["kindly"]["starts_per_second"],
                    f"{i['ratio_to_bare_with_attributes']:.2f}",
                )
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
    lines.append("")
    for target in results["targets"]:
        lines.append(f"{'PASS' if target['pass'] else 'FAIL'}  {target['target']}: {target['measured']}")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    figure = Figure(figsize=(16, 9))
    FigureCanvasAgg(figure)  # the Agg backend: PNG without a display
    axes = figure.subplots(2, 3)
    colors = ("#888888", "#2a7ab0")
    ax = axes[0][0]
    if "throughput" in results:
        t = results["throughput"]
        names, values = ["bare\nTemporal"], [t["baseline_touchpoints_per_second"]]
        for variant in t.get("variants", {}).values():
            names.append(variant["chart_label"])
            values.append(variant["touchpoints_per_second"])
        names.append("Kindly")
        values.append(t["kindly_touchpoints_per_second"])
        ax.bar(names, values, color=[colors[0]] * (len(values) - 1) + [colors[1]])
        ax.axhline(values[0] * 0.9, color="red", linestyle="--", label="target: 0.9 x bare")
        ax.legend()
    ax.set_title("SMS touchpoints per second (dev server)")

    ax = axes[0][1]
    if "costs" in results:
        c = results["costs"]
        bottom = [0.0, 0.0]
        kinds = list(c["kindly"]["lifecycle"]["actions_by_kind_per_touchpoint"])
        for kind in kinds:
            values = [
                c[s]["lifecycle"]["actions_by_kind_per_touchpoint"][kind] for s in ("baseline", "kindly")
            ]
            if any(values):
                ax.bar(["bare Temporal", "Kindly"], values, bottom=bottom, label=kind)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.axhline(3, color="red", linestyle="--", label="target: <= 3")
        ax.legend(fontsize=8)
        ax.set_title(f"Temporal actions per touchpoint ({c['touchpoints']}-touchpoint lifecycle)")

    ax = axes[0][2]
    if "costs" in results:
        c = results["costs"]
        values = [c[s]["lifecycle"]["history_events_per_touchpoint"] for s in ("baseline", "kindly")]
        ax.bar(["bare Temporal", "Kindly"], values, color=colors)
        ax.set_title("History events per touchpoint")

    ax = axes[1][0]
    if "import" in results:
        i = results["import"]
        names, values = ["bare start_workflow"], [i["bare"]["starts_per_second"]]
        if "bare_with_attributes" in i:
            names.append("bare, with the\n7 search attributes")
            values.append(i["bare_with_attributes"]["starts_per_second"])
        names.append("Kindly import")
        values.append(i["kindly"]["starts_per_second"])
        ax.bar(names, values, color=[colors[0]] * (len(values) - 1) + [colors[1]])
        ax.axhline(values[0] * 0.9, color="red", linestyle="--", label="target: 0.9 x bare")
        ax.legend()
    ax.set_title("Bulk import: workflow starts per second")

    ax = axes[1][1]
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

    ax = axes[1][2]
    if "herd" in results:
        h = results["herd"]
        seconds = sorted((int(k), v) for k, v in h["per_second"].items())
        ax.bar(
            [s for s, _ in seconds],
            [v for _, v in seconds],
            width=1.0,
            color=colors[1],
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
    figure.suptitle("Kindly vs bare Temporal")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
