"""The ``backpop`` command."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .errors import BadInput, BadParameter, cut
from .session import Session
from .vocab import AXES

if TYPE_CHECKING:
    from .blocks import Block
    from .pipeline import SessionResult
    from .sources.lsl import LslConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Detect, locate, type and follow back pops from a sensor strap.")
# Piped output is not wrapped to a terminal width that is not there.
console = Console() if sys.stdout.isatty() else Console(
    width=int(os.environ.get("COLUMNS", "0")) or 160)
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
DbOption = Annotated[Path | None, typer.Option(
    "--db", help="Store file (default: $BACKPOP_DB, else ./backpop.db)")]
SEVERITY_STYLE = {"urgent": "bold white on red", "consult": "bold black on yellow",
                  "monitor": "bold black on cyan", "info": "bold"}


@contextmanager
def _flags(**flags: str) -> Iterator[None]:
    """Word a bad parameter the command line set (``field="--flag"``) as its flag: the library
    names fields, the user typed flags."""
    try:
        yield
    except BadParameter as exc:
        if exc.field not in flags:
            raise
        raise BadInput(flags[exc.field], None, exc.reason) from None


def _sample_sessions(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/session.json"))


def describe_stream(path: Path, *, block_size: int = 4096, speed: float = 0.0) -> dict:
    """Stream a session through the pipeline and report what was read: duration, channels,
    rates, samples, gaps."""
    from .pipeline import analyze as run_analysis
    from .pipeline import open_replay

    return _read_row(run_analysis(open_replay(path, block_size=block_size, speed=speed)))


def _read_row(result: SessionResult) -> dict:
    s = result.session
    truth = s.truth()
    return {
        "subject": s.info.subject, "session": s.info.session,
        "duration_s": s.duration_s if s.audio is None else result.samples["audio"] / s.audio.sr,
        "sr": 0 if s.audio is None else s.audio.sr,
        "mics": s.info.mic_names, "imu_rates": s.imu_rates,
        "imu_samples": {imu.name: result.samples[imu.name] for imu in s.info.imus},
        "gaps": len(result.gaps), "truth_pops": None if truth is None else len(truth),
    }


def _print_streams(rows: list[dict]) -> None:
    table = Table(title="What was read", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("session", "length", "mics", "audio", "IMUs", "IMU samples", "gaps",
                "truth pops"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        rates = "/".join(sorted({f"{rate:.0f} Hz" for rate in r["imu_rates"].values()}))
        table.add_row(f"{r['subject']}/{r['session']}", f"{r['duration_s']:.1f} s",
                      ",".join(r["mics"]) or "-",
                      f"{r['sr'] / 1000:g} kHz" if r["sr"] else "-",
                      f"{len(r['imu_samples'])} @ {rates}",
                      "+".join(str(n) for n in r["imu_samples"].values()), str(r["gaps"]),
                      "-" if r["truth_pops"] is None else str(r["truth_pops"]))
    console.print(table)


def _print_analyses(results: list[SessionResult]) -> None:
    from collections import Counter

    table = Table(title="What the pipeline found", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("session", "pops (truth)", "kinds", "contexts", "ROM flex/lat/twist deg",
                "catches", "falls"):
        table.add_column(col, no_wrap=True)
    for r in results:
        truth = r.session.truth()
        kinds = Counter(p.kind for p in r.pops)
        contexts = Counter(p.context for p in r.pops)
        rom = r.motion_summary.get("rom_deg", {})
        span = "/".join(f"{rom[a]['p95'] - rom[a]['p5']:.0f}" for a in AXES) if rom else "-"
        table.add_row(f"{r.session.info.subject}/{r.session.info.session}",
                      f"{len(r.pops)} ({'-' if truth is None else len(truth)})",
                      " ".join(f"{k}:{v}" for k, v in sorted(kinds.items())) or "-",
                      " ".join(f"{k}:{v}" for k, v in sorted(contexts.items())) or "-",
                      span, str(r.motion_summary.get("catches", 0)),
                      str(r.motion_summary.get("falls", 0)))
    console.print(table)


@app.command()
def demo(samples: Annotated[Path, typer.Option(help="Folder of bundled sample sessions")] = SAMPLES,
         out: Annotated[Path, typer.Option("-o", "--out", help="Where the analyses go")] = Path(
             "out"),
         reports: Annotated[Path, typer.Option(help="Where the HTML reports go")] = Path(
             "reports"),
         db: DbOption = None,
         ) -> None:
    """Analyse the bundled samples (pops.csv, motion.csv, events.csv, summary.json in OUT),
    print each session's summary, store them with the diaries, print each subject's red
    flags and write each subject's report (with its session reports)."""
    from .diary import read_diary_csv
    from .report import write_subject_report
    from .results import analyze_to
    from .rules import refresh_flags
    from .view import summary_view

    sessions = _sample_sessions(samples)
    if not sessions:
        raise BadInput(samples, None, "no sessions found (expected SUBJECT/SESSION/session.json)")
    results = []
    for path in sessions:
        info = Session(path).info
        target = out / info.subject / info.session
        result = analyze_to(path, target)
        console.print(summary_view(result))
        console.print(f"-> {target}\n")
        results.append(result)
    _print_analyses(results)
    with _open_store(db) as store:
        for path, result in zip(sessions, results, strict=True):
            store.ingest(path, result=result)
        subjects = sorted({r.session.info.subject for r in results})
        for subject in subjects:
            diary = samples / subject / "diary.csv"
            if diary.is_file():
                store.add_diary(subject, read_diary_csv(diary), f"import:{diary.name}")
            refresh_flags(store, subject)
        console.print(f"\nstored in {store.path}\n")
        for subject in subjects:
            _print_flags(subject, _stored_flags(store, subject))
        for subject in subjects:
            path = write_subject_report(store, subject, reports / f"{subject}.html",
                                        session_reports=True)
            console.print(f"report for {subject}: {path}")


LslOption = Annotated[bool, typer.Option(
    "--lsl", help="Also publish the streams and their events on Lab Streaming Layer "
    "(needs the lsl extra: pip install 'backpop-sense[lsl]')")]
LslWaitOption = Annotated[float, typer.Option(
    help="With --lsl: first wait up to this many seconds for a consumer (LabRecorder) on "
         "every stream")]
LslIdOption = Annotated[str | None, typer.Option(
    help="With --lsl: the source id naming the strap, kept from run to run so that "
         "LabRecorder keeps its streams (default: the strap's address, else the subject)")]


def _lsl_config(lsl: bool, lsl_wait: float, lsl_id: str | None) -> LslConfig | None:
    from .sources.lsl import LslConfig

    with _flags(wait_s="--lsl-wait", source_id="--lsl-id"):
        return LslConfig(source_id=lsl_id, wait_s=lsl_wait) if lsl else None


@contextmanager
def _session_folder(path: Path) -> Iterator[Path]:
    """``path``, or for an XDF file the session folder its strap streams make, for as long
    as the command runs (the other streams are listed)."""
    if path.suffix.lower() != ".xdf":
        yield path
        return
    import tempfile

    from .sources.xdf import convert as convert_xdf

    with tempfile.TemporaryDirectory(prefix="backpop-xdf-") as tmp:
        strap = convert_xdf(path, Path(tmp) / "session")
        _print_ignored(strap.ignored)
        yield Path(tmp) / "session"


def _print_ignored(ignored: list[str]) -> None:
    console.print(f"streams left alone: {', '.join(ignored)}" if ignored else
                  "no other stream in the file", soft_wrap=True)


@app.command()
def replay(
    session: Annotated[Path, typer.Argument(help="Session folder, or XDF file holding a "
                                            "strap's streams")],
    speed: Annotated[float, typer.Option(help="1.0 = real time; 0 = as fast as possible")] = 1.0,
    block_size: Annotated[int, typer.Option(help="Audio samples per block")] = 4096,
    lsl: LslOption = False,
    lsl_wait: LslWaitOption = 0.0,
    lsl_id: LslIdOption = None,
) -> None:
    """Stream a recorded session through the pipeline as if live, with a live view; ends with
    the session summary."""
    if speed < 0:
        raise BadInput("--speed", None, "must be 0 (as fast as possible) or positive")
    if block_size < 1:
        raise BadInput("--block-size", None, "must be at least 1")
    publish = _lsl_config(lsl, lsl_wait, lsl_id)
    from .pipeline import DEFAULT_CONFIG, open_replay
    from .view import summary_view

    with _session_folder(session) as folder:
        source = open_replay(folder, block_size=block_size, speed=speed)
        # Paced like a live stream, it is processed like one: in short chunks, pops out sooner.
        config = DEFAULT_CONFIG.live() if speed > 0 else DEFAULT_CONFIG
        result = _replay_live(source, config, publish)
        console.print()
        _print_streams([_read_row(result)])
        console.print(summary_view(result))


def _replay_live(source, config, publish: LslConfig | None) -> SessionResult:  # noqa: ANN001
    """Run the pipeline on a replayed source under the live view, publishing it on LSL with
    ``publish``."""
    from rich.live import Live

    from .pipeline import analyze as run_analysis
    from .view import LiveView

    info = source.session.info
    outlets = None
    if publish is not None:
        from .sources.lsl import default_source_id, open_outlets

        outlets = open_outlets(source.session, publish, default_source_id(
            "replay", f"{info.subject}:{info.session}"))
    view = LiveView(f"{info.subject}/{info.session}")
    with Live(view.render(), console=console, refresh_per_second=4,
              transient=console.is_terminal) as live:

        def show(outputs: list, block: Block) -> None:
            if outlets is not None:
                outlets.push_outputs(outputs)
            view.update(outputs, block.t0)
            live.update(view.render())

        try:
            result = run_analysis(source if outlets is None else outlets.publish(source),
                                  config, on_output=show)
            if outlets is not None:
                outlets.finish(result)
        finally:
            if outlets is not None:
                outlets.close()
        view.update([], source.session.duration_s)
        live.update(view.render())
    return result


@app.command()
def analyze(
    session: Annotated[Path, typer.Argument(help="Session folder, or XDF file holding a "
                                            "strap's streams")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output folder "
                                             "(default: out/SUBJECT/SESSION)")] = None,
    block_size: Annotated[int, typer.Option(help="Audio samples per block")] = 16384,
) -> None:
    """Run the full pipeline on a recorded session and write pops.csv, events.csv, summary.json."""
    from .results import analyze_to
    from .view import summary_view

    if block_size < 1:
        raise BadInput("--block-size", None, "must be at least 1")
    with _session_folder(session) as folder:
        info = Session(folder).info
        target = out or Path("out") / info.subject / info.session
        result = analyze_to(folder, target, block_size=block_size)
        console.print(summary_view(result))
    console.print(f"-> {target}")


@app.command()
def convert(
    xdf: Annotated[Path, typer.Argument(metavar="FILE.xdf", help="LabRecorder file holding "
                                        "a strap's streams (record/replay --lsl)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Session folder to write")],
) -> None:
    """Write the strap's streams of an XDF file as a session folder; the streams of other
    devices in the file are listed and left alone."""
    from .sources.xdf import convert as convert_xdf

    strap = convert_xdf(xdf, out)
    s = Session(out)
    console.print(f"wrote {out}: {s.info.subject}/{s.info.session}, {s.duration_s:.1f} s, "
                  f"mics {','.join(s.info.mic_names) or '-'}, IMUs "
                  f"{','.join(i.name for i in s.info.imus) or '-'}")
    _print_ignored(strap.ignored)


@app.command()
def evaluate(
    sessions: Annotated[list[Path], typer.Argument(help="Session folders with truth.csv")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
    block_size: Annotated[int, typer.Option(help="Audio samples per block")] = 16384,
) -> None:
    """Score detection against truth.csv: F1 at +-10 and +-50 ms, FP/hour, level accuracy."""
    import json

    if block_size < 1:
        raise BadInput("--block-size", None, "must be at least 1")
    from .evaluate import score_pops, score_typing, simulated_events
    from .motion.evaluate import events_table, frames_table, score_motion
    from .pipeline import analyze as run_analysis

    rows = []
    for path in sessions:
        result = run_analysis(path, block_size=block_size)
        truth = result.session.truth()
        if truth is None:
            raise BadInput(path / "truth.csv", None, "file is missing: nothing to score against")
        scores = score_pops(truth["t"], truth["level"], [p.t for p in result.pops],
                            [p.level for p in result.pops], result.session.duration_s)
        motion_truth = result.session.motion_truth()
        scores["typing"] = score_typing(truth, [p.t for p in result.pops],
                                        [p.kind for p in result.pops],
                                        [p.context for p in result.pops], motion_truth)
        if motion_truth is not None and result.frames:
            scores["motion"] = score_motion(
                frames_table(result.frames), motion_truth, events_table(result.motion_events),
                simulated_events(result.session.info.extra, path / "session.json",
                                 result.session.duration_s + result.session.info.audio_offset_s))
        rows.append({"session": str(path), **scores})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Pop detection against truth", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("session", "truth", "found", "F1@10ms", "F1@50ms", "P", "R", "FP/h", "level",
                "kind", "pop ctx", "RMSE f/l/t deg", "context"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        level = "-" if r["level_accuracy"] is None else f"{100 * r['level_accuracy']:.0f} %"
        m = r.get("motion")
        rmse = "/".join(f"{m['rmse_deg'][a]:.1f}" for a in AXES) if m else "-"
        context = f"{100 * m['context_accuracy']:.0f} %" if m else "-"
        table.add_row("/".join(Path(r["session"]).parts[-2:]), str(r["truth"]), str(r["detected"]),
                      f"{r['10ms']['f1']:.3f}", f"{r['50ms']['f1']:.3f}",
                      f"{r['50ms']['precision']:.2f}", f"{r['50ms']['recall']:.2f}",
                      f"{r['fp_per_hour']:.1f}", level, _percent(r["typing"]["kind_accuracy"]),
                      _percent(r["typing"]["context_accuracy"]), rmse, context)
    console.print(table)


@app.command()
def simulate(
    out: Annotated[Path, typer.Argument(help="Session folder to create")],
    scenario: Annotated[str, typer.Option(help="Scenario name")] = "healthy",
    minutes: Annotated[float | None, typer.Option(help="Length; default per scenario")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same session")] = 0,
    snr: Annotated[float, typer.Option(help="Pop SNR at the nearest mic, dB")] = 15.0,
    sr: Annotated[int, typer.Option(help="Audio sample rate, Hz")] = 16000,
    imu_rate: Annotated[float, typer.Option(help="IMU sample rate, Hz")] = 200.0,
    artifacts: Annotated[bool, typer.Option(help="Footsteps, rub, speech, knocks")] = True,
    subject: Annotated[str, typer.Option(help="Subject pseudonym")] = "SIM01",
    family: Annotated[str | None, typer.Option(
        help="A member of the simulator family (dev or heldout): every acoustic parameter "
             "drawn from the seed")] = None,
) -> None:
    """Write a synthetic session with ground truth (truth.csv, motion_truth.csv)."""
    from .family import FAMILIES
    from .simulate import SimConfig, family_member, simulate_session

    if family is not None and family not in FAMILIES:
        raise BadInput("--family", None,
                       f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    fields = dict(scenario=scenario, minutes=minutes, snr_db=snr, sr=sr, imu_rate=imu_rate,
                  artifacts=artifacts, subject=subject)
    with _flags(scenario="--scenario", minutes="--minutes", seed="--seed", snr_db="--snr",
                sr="--sr", imu_rate="--imu-rate", subject="--subject"):
        config = (family_member(family, seed, **fields) if family is not None
                  else SimConfig(seed=seed, **fields))  # type: ignore[arg-type]
    summary = simulate_session(out, config)
    console.print(f"wrote {out}: {summary.duration_s:.0f} s, {summary.pops} pops "
                  f"({', '.join(f'{k} {n}' for k, n in summary.kinds.items()) or 'none'}), "
                  f"{summary.steps} heel strikes, {summary.falls} falls")




def _open_store(db: Path | None):  # noqa: ANN202 - Store is imported lazily
    from .store import Store, default_db_path

    return Store(default_db_path(db))


def _known_subject(store, subject: str) -> str:  # noqa: ANN001
    from .vocab import check_subject

    check_subject(subject)
    if not store.has_subject(subject):
        raise BadInput(store.path, f"subject {subject}", "no such subject in the store")
    return subject


def _print_flags(subject: str, flags: list[dict]) -> None:
    from rich.panel import Panel
    from rich.text import Text

    from .report.evidence import describe, when
    from .rules import NOT_A_DIAGNOSIS

    if not flags:
        console.print(f"{subject}: no red flags. {NOT_A_DIAGNOSIS}")
        return
    console.print(f"[bold]{subject}: {len(flags)} red flag{'s' * (len(flags) > 1)}, most "
                  "severe first[/bold]")
    for f in flags:
        body = Text()
        body.append(f"first seen {when(f['first_seen'])}, last seen {when(f['last_seen'])} UTC\n")
        said = describe(f["rule_id"], f["evidence"])
        body.append(said.summary + "\n")
        body.append("".join(f"  - {line}\n" for line in said.details))
        if said.more:
            body.append(f"  ... and {said.more} more\n")
        body.append(f"Why it matters: {f['reason']}\n", style="italic")
        body.append(NOT_A_DIAGNOSIS, style="dim")
        title = Text.assemble((f" {f['severity'].upper()} ", SEVERITY_STYLE[f["severity"]]),
                              f" {f['rule_id']} {f['title']}")
        console.print(Panel(body, title=title, title_align="left"))


def _stored_flags(store, subject: str) -> list[dict]:  # noqa: ANN001
    """The flags last evaluated, in the engine's order (most severe first)."""
    from .rules import Flag

    return [Flag(r.rule_id, r.severity, r.title, r.first_seen, r.last_seen, r.evidence,
                 r.reason).to_dict() for r in store.flags(subject).itertuples()]


@app.command()
def ingest(
    sessions: Annotated[list[Path], typer.Argument(help="Session folders")],
    db: DbOption = None,
) -> None:
    """Analyse (if needed) and store sessions, one transaction each; then re-evaluate the red
    flags of every subject touched."""
    from .rules import refresh_flags

    with _open_store(db) as store:
        subjects = []
        for path in sessions:
            info = Session(path).info
            status = store.ingest(path)
            console.print(f"{info.subject}/{info.session}: {status}")
            if info.subject not in subjects:
                subjects.append(info.subject)
        for subject in subjects:
            flags = refresh_flags(store, subject)
            console.print(f"{subject}: {len(flags)} red flag{'s' * (len(flags) != 1)}"
                          + (f" ({', '.join(f.rule_id + ' ' + f.severity for f in flags)})"
                             if flags else ""))


diary_app = typer.Typer(no_args_is_help=True, help="The subject's symptom diary.")
app.add_typer(diary_app, name="diary")


@diary_app.command("add")
def diary_add(
    subject: Annotated[str, typer.Argument(help="Subject pseudonym")],
    pain: Annotated[float, typer.Option(help="Pain, 0-10")] = 0.0,
    stiffness: Annotated[float, typer.Option(help="Stiffness, 0-10")] = 0.0,
    numbness: Annotated[bool, typer.Option("--numbness", help="Numbness felt")] = False,
    tingling: Annotated[bool, typer.Option("--tingling", help="Tingling felt")] = False,
    weakness: Annotated[bool, typer.Option("--weakness", help="Weakness felt")] = False,
    swelling: Annotated[bool, typer.Option("--swelling", help="Swelling seen")] = False,
    bruising: Annotated[bool, typer.Option("--bruising", help="Bruising seen")] = False,
    trauma: Annotated[bool, typer.Option("--trauma", help="A fall, accident or other trauma")
                      ] = False,
    note: Annotated[str, typer.Option(help="Free text")] = "",
    time: Annotated[str | None, typer.Option(help="ISO 8601 time (default: now)")] = None,
    db: DbOption = None,
) -> None:
    """Add one diary entry and re-evaluate the subject's red flags."""
    from datetime import UTC, datetime

    import pandas as pd

    from .diary import DIARY_COLUMNS, MAX_NOTE_CHARS, parse_time
    from .rules import refresh_flags
    from .vocab import check_subject

    check_subject(subject)
    for name, value in (("--pain", pain), ("--stiffness", stiffness)):
        if not 0 <= value <= 10:
            raise BadInput(name, None, f"{value:g} is outside the 0-10 scale")
    if len(note) > MAX_NOTE_CHARS:
        raise BadInput("--note", None, f"{len(note)} characters long; a note holds at most "
                       f"{MAX_NOTE_CHARS}")
    when = parse_time(time, "--time", "value") if time else datetime.now(UTC)
    row = {"time": pd.Timestamp(when), "pain": pain, "stiffness": stiffness,
           "numbness": int(numbness), "tingling": int(tingling), "weakness": int(weakness),
           "swelling": int(swelling), "bruising": int(bruising), "trauma": int(trauma),
           "note": note}
    with _open_store(db) as store:
        added = store.add_diary(subject, pd.DataFrame([row], columns=list(DIARY_COLUMNS)),
                                "cli")
        flags = refresh_flags(store, subject)
    console.print(f"{subject}: {added} diary entry added at {when:%Y-%m-%d %H:%M:%S %Z}; "
                  f"{len(flags)} red flag{'s' * (len(flags) != 1)}")
    urgent = [f for f in flags if f.severity == "urgent"]
    if urgent:
        _print_flags(subject, [f.to_dict() for f in urgent])


@diary_app.command("import")
def diary_import(
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="Diary file (docs/formats.md)")],
    subject: Annotated[str, typer.Option(help="Subject pseudonym")],
    db: DbOption = None,
) -> None:
    """Import diary entries from a CSV file (again: nothing is added twice)."""
    from .diary import read_diary_csv
    from .rules import refresh_flags
    from .vocab import check_subject

    check_subject(subject)
    entries = read_diary_csv(csv_file)
    with _open_store(db) as store:
        added = store.add_diary(subject, entries, f"import:{csv_file.name}")
        flags = refresh_flags(store, subject)
    console.print(f"{subject}: {added} of {len(entries)} diary entries added from {csv_file}; "
                  f"{len(flags)} red flag{'s' * (len(flags) != 1)}")


@diary_app.command("list")
def diary_list(
    subject: Annotated[str, typer.Argument(help="Subject pseudonym")],
    db: DbOption = None,
) -> None:
    """The subject's diary, oldest first."""
    from .diary import FLAGS

    with _open_store(db) as store:
        frame = store.diary(_known_subject(store, subject))
    table = Table(title=f"{subject}: diary", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("time (UTC)", "pain", "stiffness", "reported", "note", "source"):
        table.add_column(col)
    for r in frame.itertuples():
        reported = ", ".join(f for f in FLAGS if getattr(r, f) == 1)
        table.add_row(f"{r.time:%Y-%m-%d %H:%M}", f"{r.pain:g}", f"{r.stiffness:g}", reported,
                      str(r.note or ""), r.source)
    console.print(table)


@app.command()
def flags(
    subject: Annotated[str, typer.Argument(help="Subject pseudonym")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
    rules: Annotated[Path | None, typer.Option(help="Rule file to re-evaluate with "
                                               "(default: the stored flags)")] = None,
    db: DbOption = None,
) -> None:
    """The subject's red flags, most severe first, with their evidence and reasons."""
    import json

    from .rules import NOT_A_DIAGNOSIS, load_rules, refresh_flags

    with _open_store(db) as store:
        _known_subject(store, subject)
        if rules is not None:
            refresh_flags(store, subject, load_rules(rules))
        found = _stored_flags(store, subject)
    if as_json:
        print(json.dumps({"subject": subject, "flags": found, "note": NOT_A_DIAGNOSIS},
                         indent=2, default=str))
        return
    _print_flags(subject, found)


@app.command()
def report(
    subject: Annotated[str | None, typer.Argument(help="Subject pseudonym")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="HTML file (default: "
                                             "reports/SUBJECT.html)")] = None,
    session: Annotated[str | None, typer.Option(
        "--session", help="Write the researcher's report of this session instead")] = None,
    sessions: Annotated[bool, typer.Option(
        "--sessions", help="Also write every session's report, linked from the table")] = False,
    rules: Annotated[Path | None, typer.Option(help="Rule file to re-evaluate the flags "
                                               "with first")] = None,
    db: DbOption = None,
) -> None:
    """The physiotherapist's report on a subject (flags first), or with --session the
    researcher's report on one session; one self-contained HTML file each."""
    from .report import write_session_report, write_subject_report
    from .rules import load_rules, refresh_flags

    if subject is None and session is None:
        raise BadInput("report", None, "give a SUBJECT, or --session SESSION_ID")
    with _open_store(db) as store:
        if session is not None:
            path = write_session_report(store, session, subject=subject, out=out)
        else:
            _known_subject(store, subject)
            loaded = load_rules(rules) if rules is not None else None
            if loaded is not None:
                refresh_flags(store, subject, loaded)
            path = write_subject_report(store, subject, out, session_reports=sessions,
                                        rules=loaded)
    console.print(f"report: {path}")


@app.command()
def export(
    subject: Annotated[str, typer.Argument(help="Subject pseudonym")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the tables")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    db: DbOption = None,
) -> None:
    """Every table behind the subject's report, as CSV or Parquet files."""
    from .report import export_tables

    with _open_store(db) as store:
        _known_subject(store, subject)
        with _flags(fmt="--format"):
            paths = export_tables(store, subject, out, fmt)
    console.print(f"{len(paths)} tables in {out}: {', '.join(p.name for p in paths)}")


@app.command()
def scan(
    timeout: Annotated[float, typer.Option(help="How long to listen, seconds")] = 5.0,
    profile: Annotated[str | None, typer.Option(help="Only straps of this profile")] = None,
) -> None:
    """List the BLE straps advertising nearby that match a profile (firmware_configs/)."""
    from .sources.ble import scan as ble_scan

    if timeout <= 0:
        raise BadInput("--timeout", None, "must be positive")
    found = ble_scan(timeout, profile=profile)
    if not found:
        console.print("no strap found")
        return
    table = Table(title="Straps", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("address", "name", "RSSI dBm", "profile"):
        table.add_column(col)
    for f in found:
        table.add_row(f.address, f.name or "-", str(f.rssi), f.profile)
    console.print(table)


@app.command()
def record(
    profile: Annotated[str, typer.Option(help="Strap profile: a name in firmware_configs/ or "
                                         "a .toml file")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Session folder to write")],
    address: Annotated[str | None, typer.Option(help="The strap's address (default: the "
                                                "first one advertising the profile)")] = None,
    subject: Annotated[str, typer.Option(help="Subject pseudonym")] = "anonymous",
    session: Annotated[str | None, typer.Option(help="Session id (default: folder name)")
                       ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds")
                        ] = None,
    emulate: Annotated[Path | None, typer.Option(
        help="Record from this session played by a strap emulated in software, over a real "
             "BLE stack (Bumble, in-process); its mics and rates must be the profile's")] = None,
    speed: Annotated[float, typer.Option(help="Emulated strap's pace (1 = real time)")] = 1.0,
    drop: Annotated[float, typer.Option(help="Emulated packet loss, 0-1")] = 0.0,
    disconnect_at: Annotated[list[float] | None, typer.Option(
        help="Emulated link drops at these session times, s (repeatable)")] = None,
    lsl: LslOption = False,
    lsl_wait: LslWaitOption = 0.0,
    lsl_id: LslIdOption = None,
) -> None:
    """Record a strap over BLE into a session folder, crash-safe, with the live pipeline and
    view; ends with the session summary."""
    from .sources.ble import Emulation
    from .sources.ble import record as ble_record
    from .view import summary_view
    from .vocab import check_subject

    check_subject(subject)
    if duration is not None and duration <= 0:
        raise BadInput("--duration", None, "must be positive")
    with _flags(speed="--speed", drop="--drop", disconnect_at="--disconnect-at",
                subject="--subject", session="--session"):
        emulation = None if emulate is None else Emulation(
            emulate, speed=speed, drop=drop, disconnect_at=tuple(disconnect_at or ()))
        r = ble_record(profile, out, subject=subject, session=session, address=address,
                       emulate=emulation, duration_s=duration, console=console,
                       lsl=_lsl_config(lsl, lsl_wait, lsl_id))
    link = r.link
    console.print(f"\nrecorded {r.path}: {link.connects} connection(s), {link.link_losses} "
                  f"link loss(es), packets {sum(r.decode.packets.values())}, lost "
                  f"{sum(r.decode.lost.values())} (marked as gaps), malformed "
                  f"{sum(r.decode.malformed.values())}")
    if r.result is not None:
        console.print(summary_view(r.result))


@app.command()
def emulate(
    session: Annotated[Path, typer.Argument(help="Session folder to play")],
    profile: Annotated[str, typer.Option(help="Strap profile to play it as")],
    transport: Annotated[str, typer.Option(
        help="Bumble transport of the controller to advertise on, e.g. usb:0 or "
             "tcp-client:HOST:PORT")],
    speed: Annotated[float, typer.Option(help="Pace, 1 = real time")] = 1.0,
    drop: Annotated[float, typer.Option(help="Packet loss, 0-1")] = 0.0,
    disconnect_at: Annotated[list[float] | None, typer.Option(
        help="Drop the link at these session times, s (repeatable)")] = None,
) -> None:
    """Play a recorded session as a BLE strap (a Bumble GATT server), at the profile's pace."""
    from .sources.emulator import emulate as run_emulator

    with _flags(speed="--speed", drop="--drop", disconnect_at="--disconnect-at",
                transport="--transport"):
        stats = run_emulator(session, profile, transport=transport, speed=speed, drop=drop,
                             disconnect_at=tuple(disconnect_at or ()))
    console.print(f"emulated {session}: {stats.sent} packets sent, {stats.dropped} dropped on "
                  f"purpose, {stats.unheard} unheard, {stats.disconnects} disconnects")


@app.command()
def batch(
    sessions: Annotated[list[Path], typer.Argument(help="Session folders")],
    engine: Annotated[str, typer.Option(help="local (a process pool) or dask")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        help="Dask scheduler address (default: a LocalCluster)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: the "
                                                "machine's cores)")] = None,
    db: DbOption = None,
) -> None:
    """Analyse and store many sessions in parallel (only this process writes the store);
    sessions already stored with the same inputs and analysis version are skipped, a failed
    one is reported and the rest go on. Exit status 2 if any failed."""
    from .batch import run_batch

    with _flags(engine="--engine", workers="--workers", scheduler="--scheduler"):
        report = run_batch(sessions, db=db, engine=engine, workers=workers,
                           scheduler=scheduler, progress=True)
    for path, error in report.failed:
        console.print(f"[red]failed[/red] {path}: {error}", soft_wrap=True)
    console.print(report.summary())
    if report.failed:
        raise typer.Exit(2)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f} %"


def _one_line(message: str) -> str:
    # Library messages (pandas, libsndfile) may hold newlines; the contract is one line.
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
"""Click's ``UsageError``, wherever this typer takes click from (its own copy since 0.22)."""


def main() -> None:
    """Entry point: bad input becomes one line on stderr and exit status 2, never a traceback.

    Usage errors (unknown option, bad value, missing argument) are one line too, naming the
    command, with status 2; a command run without arguments prints its help.
    """
    try:
        code = app(standalone_mode=False)
    except _USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()
            sys.exit(2)
        where = exc.ctx.command_path if exc.ctx else "backpop"
        print(f"backpop: error: {where}: {_one_line(exc.format_message())} (see --help)",
              file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("backpop: aborted", file=sys.stderr)
        sys.exit(130)
    except BadInput as exc:
        print(f"backpop: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"backpop: error: {exc.filename or ''}: {cut(str(exc.strerror or exc), 180)}",
              file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the user gets one line, developers the trace
        if os.environ.get("BACKPOP_DEBUG"):
            raise
        print(f"backpop: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
              "(set BACKPOP_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
