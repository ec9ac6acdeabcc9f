"""One table of all measurements, with the targets next to the figures.

The table is Markdown so it reads in a terminal and pastes into the README as it is. A
project cell's ratio is its median over the best (lowest) peer median of the same row,
only where the peers do the same work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = {
    "thread": "This project, thread",
    "process": "This project, process",
    "peer": "django-apscheduler pattern",
    "fresh": "Fresh process (cron)",
    "bare": "Bare call_command",
}
SHORT = {"peer": "django-apscheduler", "fresh": "fresh process", "bare": "bare call_command"}
PROJECT = ("thread", "process")
PEERS = ("peer", "fresh", "bare")
SAME = "(same daemon)"
NONE = "—"


@dataclass
class Row:
    key: str
    title: str
    cells: dict[str, str]
    target: str = NONE
    verdict: str = NONE
    # Medians for the ratio column, only in rows where the peers are comparable.
    medians: dict[str, float] = field(default_factory=dict)

    def ratio(self) -> str:
        peers = {name: self.medians[name] for name in PEERS if name in self.medians}
        mine = {name: self.medians[name] for name in PROJECT if name in self.medians}
        if not peers or not mine:
            return NONE
        best = min(peers, key=peers.get)
        if peers[best] <= 0:
            return f"{NONE} (best peer: 0)"
        ratios = [value / peers[best] for value in mine.values()]
        parts = [f"{r:.0f}x" if r >= 10 else f"{r:.2g}x" for r in ratios]
        return f"{' / '.join(parts)} {SHORT[best]}"


def num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread(stats: dict | None, unit: str = "ms", scale: float = 1.0) -> str:
    """ "median / p99 unit" for a summary from :func:`bench.measure.summary`."""
    if not stats or not stats.get("n"):
        return NONE
    return f"{num(stats['median'] * scale)} / {num(stats['p99'] * scale)} {unit}"


def span(values: list[float], unit: str = "s") -> str:
    """ "1.02 to 1.10 s": the lowest and the highest of ``values``."""
    return f"{num(min(values))} to {num(max(values))} {unit}"


def trials(figures: list[float | None] | None, unit: str = "s", scale: float = 1.0) -> str:
    """ "; median of 3 trials (1.02 to 1.10 s)" for a figure taken more than once, else ""."""
    if not figures or len(figures) < 2:
        return ""
    done = [figure * scale for figure in figures if figure is not None]
    text = f"; median of {len(figures)} trials"
    if done:
        text += f" ({span(done, unit)})"
    if len(done) < len(figures):
        text += f", {len(figures) - len(done)} incomplete"
    return text


def verdict(checks: dict[str, bool]) -> str:
    """ "met", "missed", or per column when they differ."""
    if not checks:
        return NONE
    values = set(checks.values())
    if len(values) == 1:
        return "met" if values.pop() else "missed"
    return "; ".join(f"{name}: {'met' if ok else 'missed'}" for name, ok in checks.items())


def with_misses(text: str, stats: dict) -> str:
    missed = stats.get("missed") or 0
    return f"{text} ({missed} missed)" if missed > 0 else text


# Per-run targets: thread by database (SQLite, PostgreSQL), process in ms.
THREAD_RUN_MS = {False: 0.6, True: 1.5}
PROCESS_RUN_MS = 5


def overhead_rows(m: dict, postgres: bool) -> list[Row]:
    fresh = m["fresh"]["median"]
    rows = []
    for suffix, title in (
        ("", "Overhead per no-op run, fire → recorded finish (`run_schedule`)"),
        ("_reconnecting", "… in the daemon's pool wrapper (new connection per run)"),
    ):
        cells = {mode: spread(m[mode + suffix]) for mode in PROJECT}
        medians = {mode: m[mode + suffix]["median"] for mode in PROJECT}
        share = medians["process"] / fresh * 100
        cells["process"] += f" ({share:.1f} % of fresh)"
        if not suffix:
            cells.update(fresh=spread(m["fresh"]), bare=spread(m["bare"]))
            medians.update(fresh=fresh, bare=m["bare"]["median"])
        rows.append(
            Row(
                f"overhead_per_run{suffix}",
                title,
                cells,
                f"median: thread ≤ {THREAD_RUN_MS[False]:g} ms (SQLite), "
                f"≤ {THREAD_RUN_MS[True]:g} ms (PostgreSQL); process ≤ {PROCESS_RUN_MS} ms",
                verdict(
                    {
                        "thread": medians["thread"] <= THREAD_RUN_MS[postgres],
                        "process": medians["process"] <= PROCESS_RUN_MS,
                    }
                ),
                medians,
            )
        )
    return rows


def lateness_row(key: str, title: str, m: dict, limit_ms: float) -> Row:
    cells = {kind: with_misses(spread(m[kind]), m[kind]) for kind in m}
    medians = {kind: m[kind]["median"] for kind in m if m[kind].get("n")}
    checks = {kind: m[kind].get("n", 0) > 0 and m[kind]["p99"] <= limit_ms for kind in PROJECT}
    return Row(key, title, cells, f"p99 ≤ {limit_ms:g} ms", verdict(checks), medians)


BURST_MS = {"thread": 1000, "process": 2500}


def burst_row(m: dict, count: int) -> Row:
    cells, medians, checks = {}, {}, {}
    for kind, data in m.items():
        recorded = data["recorded"]
        if not recorded.get("n"):
            cells[kind] = NONE
            continue
        text = f"{num(recorded['median'] / 1000)} / {num(recorded['max'] / 1000)} s"
        if data.get("missed"):
            text += f"; {data['missed']} of {count:,} missed"
            if data.get("all_handled_ms"):
                text += f", last recorded at {data['all_handled_ms'] / 1000:.1f} s"
        elif not data["complete"]:
            text += " (incomplete after 60 s)"
        if not data["ready_before_fire"]:
            text += " (not up before the fire time)"
        cells[kind] = text + trials(data.get("trials"), scale=1 / 1000)
        if not data.get("missed"):  # a peer that skipped runs did not do the same work
            medians[kind] = recorded["max"]
        if kind in BURST_MS:
            checks[kind] = (
                data["complete"] and data["ready_before_fire"] and recorded["max"] <= BURST_MS[kind]
            )
    return Row(
        "same_second_burst",
        f"{count:,} due in the same second: fire → recorded finish, median / max (= all)",
        cells,
        f"all recorded: thread ≤ {BURST_MS['thread'] / 1000:g} s, "
        f"process ≤ {BURST_MS['process'] / 1000:g} s",
        verdict(checks),
        medians,
    )


def idle_rows(m: dict, count: int, postgres: bool) -> list[Row]:
    project, peer = m["project"], m["peer"]

    def each(render) -> dict[str, str]:
        return {"thread": render(project), "process": SAME, "peer": render(peer)}

    def startup(d: dict) -> str:
        text = f"{d['startup_s']:.2f} s (restart {d['restart_s']:.2f} s)"
        fresh, again = d.get("startup_trials_s"), d.get("restart_trials_s")
        if fresh and len(fresh) > 1:
            text += f"{trials(fresh)}; restart {span(again)}"
        return text

    def memory(d: dict) -> str:
        text = f"{d['rss_mb']:.0f} MB"
        if d["forkserver_rss_mb"]:
            text += f" + {d['forkserver_rss_mb']:.0f} MB fork server"
        for label, rss in d["children_rss_mb"].items():
            name = label[1:].partition("]")[0]  # "[name] command line"
            if name != "forkserver":
                text += f" + {rss:.0f} MB {name}"
        return f"PSS {d['pss_mb']:.0f} MB in all; RSS {text}" if "pss_mb" in d else text

    def queries(d: dict) -> str:
        s = d["statements"]
        return f"{s['per_s'] * 60:.0f}/min ({s['db_ms_per_s'] * 60:.0f} ms DB time/min)"

    # Pages the fork server shares with the daemon count once in PSS, twice in RSS.
    total_mb = project.get("pss_mb") or project["rss_mb"] + project["forkserver_rss_mb"]
    per_minute = project["statements"]["per_s"] * 60
    # SQLite's change probe, one a POLL_INTERVAL, comes on top of the statements allowed.
    allowed, allowance = (10, "≤ 10/min") if postgres else (70, "≤ 10/min + 60 probes")
    return [
        Row(
            "idle_startup",
            f'{count:,} schedules: start-up, spawn → "Scheduler started"',
            each(startup),
            "≤ 2 s",
            verdict({"thread": max(project["startup_s"], project["restart_s"]) <= 2}),
            {"thread": project["startup_s"], "peer": peer["startup_s"]},
        ),
        Row(
            "idle_rss",
            f"{count:,} schedules: memory, daemon with its helpers (PSS; RSS each)",
            each(memory),
            "≤ 100 MB PSS (with fork server)",
            verdict({"thread": total_mb <= 100}),
            {"thread": total_mb, "peer": peer.get("pss_mb") or peer["rss_mb"]},
        ),
        Row(
            "idle_cpu",
            f"{count:,} schedules: CPU while nothing is due (% of one core)",
            each(lambda d: f"{d['cpu_percent']:.2f} %"),
            "≤ 0.1 %",
            verdict({"thread": project["cpu_percent"] <= 0.1}),
            {"thread": project["cpu_percent"], "peer": peer["cpu_percent"]},
        ),
        Row(
            "idle_queries",
            f"{count:,} schedules: SQL statements while idle",
            each(queries),
            allowance,
            verdict({"thread": per_minute <= allowed}),
            {"thread": project["statements"]["per_s"], "peer": peer["statements"]["per_s"]},
        ),
    ]


def pickup_row(stats: dict, postgres: bool) -> Row:
    text = spread(stats)
    if stats.get("timeouts"):
        text += f" ({stats['timeouts']} never)"
    ok = stats.get("n", 0) > 0 and not stats.get("timeouts")
    if postgres:  # notified: within a tenth of a second
        ok, target = ok and stats["p99"] <= 100, "p99 ≤ 100 ms (notification)"
    else:  # one probe a second
        ok, target = ok and stats["max"] <= 1000, "max ≤ 1 s (probe every 1 s)"
    return Row(
        "pickup_latency",
        "Pick-up of a schedule committed by another process → job scheduled",
        {"thread": text, "process": SAME, "peer": "never (until restart)"},
        target,
        verdict({"thread": ok}),
    )


def more_daemons_row(m: dict) -> Row:
    per_fire = {int(n): d["statements_per_fire"] for n, d in m.items()}
    text = ", ".join(f"{n}: {value:.1f}" for n, value in sorted(per_fire.items()))
    if not all(d["each_once"] for d in m.values()):
        text += " (NOT each fire time once)"
    divided = max(d.get("divided_s", 0) for d in m.values())
    if divided:
        text += f" (measured once divided, {divided:.0f} s after start)"
    flat = max(per_fire.values()) <= 1.2 * per_fire[min(per_fire)]
    return Row(
        "more_daemons",
        "SQL statements per fire time with 1, 2, 3 daemons on one database",
        {"thread": text, "process": SAME},
        "flat: daemons divide the schedules",
        verdict({"thread": flat and all(d["each_once"] for d in m.values())}),
    )


CATCH_UP_S = 3


def catch_up_row(m: dict, count: int) -> Row:
    cells, checks = {}, {}
    for kind in PROJECT:
        d = m[kind]
        if d["all_recorded_s"] is None:
            cells[kind] = f"incomplete: {d['runs']} of {d['of']}"
        else:
            once = "each exactly once" if d["exactly_once"] else "NOT exactly once"
            cells[kind] = f"{d['all_recorded_s']:.2f} s, {once}{trials(d.get('trials'))}"
        checks[kind] = bool(
            d["complete"] and d["exactly_once"] and (d["all_recorded_s"] or 1e9) <= CATCH_UP_S
        )
    cells["peer"] = f"{m['peer']['runs']} of {m['peer']['of']:,} run"
    return Row(
        "catch_up",
        f"Catch-up of {count:,} after a 24 h outage: spawn → all recorded",
        cells,
        f"≤ {CATCH_UP_S} s, each exactly once",
        verdict(checks),
    )


def statements_rows(per_run: dict, single: dict) -> list[Row]:
    def breakdown(d: dict) -> str:
        verbs = dict(d["verbs"])
        data = [
            f"{verbs.pop(verb)} {verb}" for verb in ("SELECT", "INSERT", "UPDATE") if verb in verbs
        ]
        if verbs:
            data.append(f"{sum(verbs.values())} transaction control")
        return f"{d['median']:g} ({', '.join(data)})"

    def rate(d: dict) -> str:
        s = d["statements"]
        db_ms, connections = s["db_ms_per_s"], s["connections_per_s"]
        return f"{s['per_s']:.1f}/s ({db_ms:.1f} ms in DB, {connections:.1f} connections)"

    return [
        Row(
            "statements_per_run",
            "SQL statements per run, claim + finish",
            {mode: breakdown(per_run[mode]) for mode in PROJECT},
        ),
        Row(
            "statements_per_second",
            "SQL statements per second, whole scheduler, 1 run/s",
            {kind: rate(single[kind]) for kind in single},
            medians={kind: single[kind]["statements"]["per_s"] for kind in single},
        ),
    ]


def history_rows(m: dict) -> list[Row]:
    """Server time of each page over the seeded history, and a claim's delay by pruning."""
    rows = [
        Row(
            f"history_{label}",
            f"{label} with {m['rows']:,} runs (median / max)",
            {"thread": f"{num(ms['median'])} / {num(ms['max'])} ms", "process": SAME},
            "≤ 300 ms",
            verdict({"max": ms["max"] <= 300}),
        )
        for label, ms in m["pages_ms"].items()
    ]
    prune = m["prune"]
    delay = prune["pruning_ms"]["max"] - prune["quiet_ms"]["median"]
    rows.append(
        Row(
            "history_prune",
            f"Claim while pruning {prune['pruned']:,} runs (median / max; quiet "
            f"{num(prune['quiet_ms']['median'])} ms)",
            {
                "thread": f"{num(prune['pruning_ms']['median'])} / "
                f"{num(prune['pruning_ms']['max'])} ms",
                "process": SAME,
            },
            "≤ 50 ms delay",
            verdict({"max": delay <= 50}),
        )
    )
    return rows


def build(m: dict, sizes, database: str) -> list[Row]:
    postgres = database.startswith("PostgreSQL")
    return [
        *overhead_rows(m["overhead_per_run"], postgres),
        lateness_row(
            "lateness_one_schedule",
            f"Start lateness, 1 schedule every 1 s ({sizes.single_window:g} s)",
            m["lateness_one_schedule"],
            5,
        ),
        lateness_row(
            "lateness_load",
            f"Start lateness, {sizes.load_schedules:,} schedules at "
            f"~{sizes.load_schedules / sizes.load_period:.0f} fires/s ({sizes.load_window:g} s)",
            m["lateness_load"],
            50,
        ),
        burst_row(m["same_second_burst"], sizes.burst_schedules),
        pickup_row(m["pickup_latency"], postgres),
        *idle_rows(m["idle"], sizes.idle_schedules, postgres),
        more_daemons_row(m["more_daemons"]),
        catch_up_row(m["catch_up"], sizes.catch_up_schedules),
        *statements_rows(m["statements_per_run"], m["lateness_one_schedule"]),
    ]


def markdown(rows: list[Row]) -> str:
    header = ["Measurement", *COLUMNS.values(), "Ratio to best peer", "Target", "Verdict"]
    body = [
        [
            row.title,
            *(row.cells.get(key, NONE) for key in COLUMNS),
            row.ratio(),
            row.target,
            row.verdict,
        ]
        for row in rows
    ]
    return _table(header, body)


def side_by_side(results: dict[str, dict], keys: list[str] | None = None) -> str:
    """One table of both databases' rows: this project (thread, and process where it
    differs) and the peer on each.

    ``results`` maps a database's name to the JSON one benchmark run wrote for it;
    ``keys`` picks rows, in that order (default: all of the first database's).
    """
    names = list(results)
    by_key = {name: {row["key"]: row for row in results[name]["rows"]} for name in names}
    header = ["Measurement"]
    for name in names:
        header += [f"{name}: this project", f"{name}: peer"]
    header += ["Target", *(f"{name}: verdict" for name in names)]
    body = []
    for key in keys or list(by_key[names[0]]):
        first = by_key[names[0]][key]
        line = [first["title"]]
        for name in names:
            cells = by_key[name].get(key, {}).get("cells", {})
            mine = cells.get("thread", NONE)
            if cells.get("process", SAME) not in (SAME, NONE, mine):
                mine = f"thread {mine}; process {cells['process']}"
            line += [mine, cells.get("peer", NONE)]
        line += [
            first["target"],
            *(by_key[name].get(key, {}).get("verdict", NONE) for name in names),
        ]
        body.append(line)
    return _table(header, body)


def _table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def legend(meta: dict) -> str:
    machine = meta["machine"]
    return (
        "Cells: median / p99 (p99 is the maximum below 100 samples); warm-up runs excluded; "
        "ratio: this project's median over the best peer's.\n"
        f"{meta['database']}; {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram_gib']} GiB "
        f"RAM; load average {' '.join(machine['loadavg_at_start'])} at start, "
        f"{' '.join(machine['loadavg_at_end'])} at end; {meta['seconds']:.0f} s in all."
    )
