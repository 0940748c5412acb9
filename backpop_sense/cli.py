"""The ``backpop`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .errors import BadInput
from .session import Session

if TYPE_CHECKING:
    from .pipeline import SessionResult

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Detect, locate, type and follow back pops from a sensor strap.")
# Piped output is not wrapped to a terminal width that is not there.
console = Console() if sys.stdout.isatty() else Console(width=120)
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


def _sample_sessions(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/session.json"))


def describe_stream(path: Path, *, block_size: int = 4096, speed: float = 0.0) -> dict:
    """Stream a session through the pipeline and report what was read: duration, channels,
    rates, samples, gaps."""
    from .pipeline import analyze as run_analysis

    return _read_row(run_analysis(path, block_size=block_size, speed=speed))


def _read_row(result: SessionResult) -> dict:
    s = result.session
    truth = s.truth()
    return {
        "subject": s.info.subject, "session": s.info.session,
        "duration_s": result.samples["audio"] / s.audio.sr, "sr": s.audio.sr,
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
                      ",".join(r["mics"]), f"{r['sr'] / 1000:g} kHz",
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
        span = "/".join(f"{rom[a]['p95'] - rom[a]['p5']:.0f}" for a in ("flexion", "lateral",
                                                                        "twist")) if rom else "-"
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
         ) -> None:
    """Analyse the bundled samples (pops.csv, motion.csv, events.csv, summary.json in OUT) and
    print each session's summary."""
    from .diary import read_diary_csv
    from .results import analyze_to
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
    _print_streams([_read_row(r) for r in results])
    _print_analyses(results)
    for diary in sorted(samples.glob("*/diary.csv")):
        entries = read_diary_csv(diary)
        console.print(f"diary {diary.parent.name}: {len(entries)} entries, "
                      f"{entries['time'].min():%Y-%m-%d} to {entries['time'].max():%Y-%m-%d}")


@app.command()
def replay(
    session: Annotated[Path, typer.Argument(help="Session folder")],
    speed: Annotated[float, typer.Option(help="1.0 = real time; 0 = as fast as possible")] = 1.0,
    block_size: Annotated[int, typer.Option(help="Audio samples per block")] = 4096,
) -> None:
    """Stream a recorded session through the pipeline as if live, with a live view; ends with
    the session summary."""
    if speed < 0:
        raise BadInput("--speed", None, "must be 0 (as fast as possible) or positive")
    if block_size < 1:
        raise BadInput("--block-size", None, "must be at least 1")
    from rich.live import Live

    from .pipeline import Pipeline, open_replay
    from .view import LiveView, summary_view

    source = open_replay(session, block_size=block_size, speed=speed)
    info = source.session.info
    pipeline = Pipeline(source.session)
    view = LiveView(f"{info.subject}/{info.session}")
    with Live(view.render(), console=console, refresh_per_second=4,
              transient=console.is_terminal) as live:
        for block in source:
            view.update(pipeline.feed(block), block.t0)
            live.update(view.render())
        result = pipeline.finish()
        view.update([], source.session.duration_s)
        live.update(view.render())
    console.print()
    _print_streams([_read_row(result)])
    console.print(summary_view(result))


@app.command()
def analyze(
    session: Annotated[Path, typer.Argument(help="Session folder")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output folder "
                                             "(default: out/SUBJECT/SESSION)")] = None,
    block_size: Annotated[int, typer.Option(help="Audio samples per block")] = 16384,
) -> None:
    """Run the full pipeline on a recorded session and write pops.csv, events.csv, summary.json."""
    from .results import analyze_to
    from .view import summary_view

    if block_size < 1:
        raise BadInput("--block-size", None, "must be at least 1")
    info = Session(session).info
    target = out or Path("out") / info.subject / info.session
    result = analyze_to(session, target, block_size=block_size)
    console.print(summary_view(result))
    console.print(f"-> {target}")


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
    from .evaluate import score_pops
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
        if motion_truth is not None and result.frames:
            scores["motion"] = score_motion(
                frames_table(result.frames), motion_truth, events_table(result.motion_events),
                result.session.info.extra.get("simulation"))
        rows.append({"session": str(path), **scores})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Pop detection against truth", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("session", "truth", "found", "F1@10ms", "F1@50ms", "P", "R", "FP/h", "level",
                "RMSE f/l/t deg", "context"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        level = "-" if r["level_accuracy"] is None else f"{100 * r['level_accuracy']:.0f} %"
        m = r.get("motion")
        rmse = "/".join(f"{m['rmse_deg'][a]:.1f}" for a in ("flexion", "lateral", "twist")) \
            if m else "-"
        context = f"{100 * m['context_accuracy']:.0f} %" if m else "-"
        table.add_row("/".join(Path(r["session"]).parts[-2:]), str(r["truth"]), str(r["detected"]),
                      f"{r['10ms']['f1']:.3f}", f"{r['50ms']['f1']:.3f}",
                      f"{r['50ms']['precision']:.2f}", f"{r['50ms']['recall']:.2f}",
                      f"{r['fp_per_hour']:.1f}", level, rmse, context)
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
) -> None:
    """Write a synthetic session with ground truth (truth.csv, motion_truth.csv)."""
    from .simulate import SCENARIOS, SimConfig, simulate_session

    if scenario not in SCENARIOS:
        raise BadInput("--scenario", None,
                       f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if minutes is not None and not 0 < minutes <= 24 * 60:
        raise BadInput("--minutes", None, "must be above 0 and at most 1440")
    config = SimConfig(scenario=scenario, minutes=minutes, seed=seed, snr_db=snr, sr=sr,
                       imu_rate=imu_rate, artifacts=artifacts, subject=subject)
    summary = simulate_session(out, config)
    console.print(f"wrote {out}: {summary.duration_s:.0f} s, {summary.pops} pops "
                  f"({', '.join(f'{k} {n}' for k, n in summary.kinds.items()) or 'none'}), "
                  f"{summary.steps} heel strikes, {summary.falls} falls")


def _one_line(message: str) -> str:
    # Library messages (pandas, libsndfile) may hold newlines; the contract is one line.
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main() -> None:
    """Entry point: bad input becomes one line on stderr and exit status 2, never a traceback.

    Usage errors (unknown option, bad value) are reported by typer itself, also with status 2.
    """
    try:
        app()
    except BadInput as exc:
        print(f"backpop: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"backpop: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the user gets one line, developers the trace
        if os.environ.get("BACKPOP_DEBUG"):
            raise
        print(f"backpop: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
              "(set BACKPOP_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
