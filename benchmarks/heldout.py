"""Held-out detection sets: members of the simulator family, and real heart recordings.

The family (``backpop_sense/family.py``) draws every acoustic parameter per session and renders
each sound with one of two independent models. Parameters are chosen on ``dev`` members;
``heldout`` members (another sound model, other seeds) are scored for the README and never
used for choosing. The real heart recordings (``../shared/data/real-heart``, 246 recordings,
no pop in them) are joined into one single-mic session, as ``../shared/tools/real_heart_check.py``
does, and every pop found there is false.

Each set's sessions are simulated once into ``bench-out/family/`` and analysed in two
processes. Used by ``benchmarks/detection.py``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from backpop_sense.correlate import CorrelateConfig
from backpop_sense.evaluate import match_pairs, score_pops
from backpop_sense.pipeline import analyze
from backpop_sense.pops.artifacts import GateConfig
from backpop_sense.pops.detector import DetectorConfig
from backpop_sense.session import Session
from backpop_sense.simulate import SimConfig, family_member, simulate_session

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-out" / "family"
REAL_HEART = ROOT.parent / "shared" / "data" / "real-heart"
POP_SCENARIOS = ("twist-cavitation", "snapping", "post-fall")
FIRST_SEED = {"dev": 100_000, "heldout": 500_000}
"""Each family's seeds start here; a set's sessions are numbered from its own offset."""


@dataclass(frozen=True)
class FamilySet:
    """A kind of session scored together: scenarios, SNR range, mics, rate, overrides."""

    name: str
    scenarios: tuple[str, ...]
    snr_db: tuple[float, float] = (10.0, 20.0)
    minutes: float = 3.0
    sr: int = 16000
    one_mic: bool = False
    acoustics: dict = field(default_factory=dict)
    per_scenario: int = 1
    """Sessions per scenario for each seed count unit (artifacts-only sets take more)."""


def _low_snaps(seed: int) -> dict:
    """Recurring tendon snaps that are low and tonal (200-800 Hz)."""
    from backpop_sense.family import draw_acoustics, draw_pop_sound

    rng = np.random.default_rng([seed, 31])
    drawn = draw_acoustics("dev", seed, 3).pops
    snap = draw_pop_sound(rng, centre_hz=(200.0, 800.0), tonal=True)
    return {"pops": (drawn[0], snap, drawn[2])}


SETS = (
    FamilySet("10-20 dB", POP_SCENARIOS, (10.0, 20.0)),
    FamilySet("0-6 dB", POP_SCENARIOS, (0.0, 6.0)),
    FamilySet("low snaps 8 kHz", ("snapping",), (10.0, 20.0), sr=8000, per_scenario=2),
    FamilySet("one mic, pops", POP_SCENARIOS, (10.0, 20.0), one_mic=True),
    FamilySet("artifacts-only", ("artifacts-only",), minutes=5.0, per_scenario=2),
    FamilySet("one mic, artifacts", ("artifacts-only",), minutes=5.0, one_mic=True,
              per_scenario=2),
)
ONE_MIC_LEVELS = ("T8", "T10", "T12", "L1", "L3")


def configs(family: str, fset: FamilySet, seeds: int) -> list[SimConfig]:
    """The set's sessions for ``family``: ``seeds`` per scenario (times ``per_scenario``)."""
    base = FIRST_SEED[family] + 1000 * SETS.index(fset)
    out = []
    for k in range(seeds * fset.per_scenario):
        for j, scenario in enumerate(fset.scenarios):
            seed = base + 10 * k + j
            rng = np.random.default_rng([seed, 99])
            snr = float(rng.uniform(*fset.snr_db))
            mics = (str(rng.choice(ONE_MIC_LEVELS)),) if fset.one_mic else ("T10", "L1", "L4")
            fixed = dict(fset.acoustics)
            if fset.name.startswith("low snaps"):
                fixed.update(_low_snaps(seed))
            out.append(family_member(family, seed, acoustics=fixed, scenario=scenario,
                                     minutes=fset.minutes, snr_db=snr, sr=fset.sr, mics=mics,
                                     with_imus=not fset.one_mic))
    return out


def folder(family: str, fset: FamilySet, config: SimConfig) -> Path:
    slug = fset.name.replace(" ", "-").replace(",", "")
    return OUT / family / slug / f"{config.scenario}-{config.seed}"


def make(path: Path, config: SimConfig) -> Path:
    """Simulate ``config`` into ``path`` unless it is there already."""
    if not (path / "truth.csv").exists():
        if path.exists():
            raise SystemExit(f"{path} is incomplete; remove it and run again")
        simulate_session(path, config)
    return path


@dataclass
class Outcome:
    """What one session gave: truth, our pops and rejections, and its length."""

    name: str
    duration_s: float
    truth_t: list[float]
    truth_level: list[str]
    truth_kind: list[str]
    truth_context: list[str]
    t: list[float]
    level: list[str]
    kind: list[str]
    context: list[str]
    rejected_t: list[float]
    rejected_reason: list[str]
    wall_s: float


def run(path: Path, config: SimConfig | None = None, detector: DetectorConfig | None = None,
        gate: GateConfig | None = None, correlate: CorrelateConfig | None = None) -> Outcome:
    """Make (if a config is given) and analyse one session."""
    if config is not None:
        make(path, config)
    s = Session(path)
    truth = s.truth()
    r = analyze(path, detector=detector, gate=gate, correlate=correlate)
    has_context = "context" in truth.columns
    return Outcome(
        path.name, s.duration_s, truth["t"].tolist(), truth["level"].astype(str).tolist(),
        truth["kind"].astype(str).tolist(),
        truth["context"].astype(str).tolist() if has_context else [""] * len(truth),
        [p.t for p in r.pops], [p.level for p in r.pops], [p.kind for p in r.pops],
        [p.context for p in r.pops], [x.t for x in r.rejected], [x.reason for x in r.rejected],
        r.wall_s)


def run_all(jobs: Sequence[tuple[Path, SimConfig | None]], workers: int = 2, **stages
            ) -> list[Outcome]:
    """:func:`run` over ``jobs`` in ``workers`` processes, in order."""
    if workers <= 1:
        return [run(p, c, **stages) for p, c in jobs]
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(run, p, c, **stages) for p, c in jobs]
        return [f.result() for f in futures]


def score(outcomes: list[Outcome]) -> dict:
    """Scores of a set (sessions laid end to end): F1, FP/h, level, kind and context
    accuracy of matched pops, missed pops by what became of them."""
    offset = 0.0
    tt, tl, tk, tc, ot, ol, ok, oc, rt, rr = ([] for _ in range(10))
    for o in outcomes:
        tt += [t + offset for t in o.truth_t]
        tl += o.truth_level
        tk += o.truth_kind
        tc += o.truth_context
        ot += [t + offset for t in o.t]
        ol += o.level
        ok += o.kind
        oc += o.context
        rt += [t + offset for t in o.rejected_t]
        rr += o.rejected_reason
        offset += o.duration_s + 10.0
    duration = offset - 10.0 * len(outcomes)
    out = score_pops(tt, tl, ot, ol, duration)
    pairs = match_pairs(tt, ot, 0.05)
    out["kind_accuracy"] = (sum(tk[i] == ok[j] for i, j in pairs) / len(pairs)
                            if pairs and any(k != "unknown" for k in ok) else None)
    with_context = [(i, j) for i, j in pairs if tc[i]]
    out["context_accuracy"] = (sum(tc[i] == oc[j] for i, j in with_context) / len(with_context)
                               if with_context and any(c != "unknown" for c in oc) else None)
    found = {i for i, _ in pairs}
    rt_arr = np.asarray(rt, dtype=float)
    missed: dict[str, int] = {}
    for i, t in enumerate(tt):
        if i not in found:
            d = np.abs(rt_arr - t)
            why = rr[int(np.argmin(d))] if len(d) and d.min() <= 0.05 else "not detected"
            missed[why] = missed.get(why, 0) + 1
    out["missed"] = missed
    matched = {j for _, j in pairs}
    false_by_session: dict[str, int] = {}
    k = 0
    for o in outcomes:
        for _ in o.t:
            if k not in matched:
                false_by_session[o.name] = false_by_session.get(o.name, 0) + 1
            k += 1
    out["false"] = false_by_session
    out["wall_s"] = sum(o.wall_s for o in outcomes)
    return out


def real_heart_session(out: Path) -> tuple[Path, list[tuple[str, str, float, float]]]:
    """The real heart recordings joined into one single-mic session (as the shared check
    joins them: each at the same RMS, 60 ms cross-fades); and each recording's file, class,
    start and end in it (s).

    Raises
    ------
    SystemExit
        When ``../shared/data/real-heart`` is not there.
    """
    if not (REAL_HEART / "recordings.csv").exists():
        raise SystemExit(f"no real heart recordings at {REAL_HEART}")
    rows = list(csv.DictReader(open(REAL_HEART / "recordings.csv")))
    parts, fs = [], None
    for r in rows:
        x, rate = sf.read(REAL_HEART / r["file"], dtype="float64")
        fs = fs or rate
        x = x - x.mean()
        parts.append(x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * 0.05)
    n = int(0.060 * fs)
    fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    y, spans = parts[0], []
    spans.append((rows[0]["file"], rows[0]["class"], 0.0, len(parts[0]) / fs))
    for r, p in zip(rows[1:], parts[1:], strict=True):
        start = len(y) - n
        y = np.concatenate([y[:-n], y[-n:] * fade[::-1] + p[:n] * fade, p[n:]])
        spans.append((r["file"], r["class"], start / fs, len(y) / fs))
    y = y / max(1.0, np.max(np.abs(y)) / 0.9)
    session = out / "session"
    if not (session / "truth.csv").exists():
        session.mkdir(parents=True, exist_ok=True)
        sf.write(session / "mic.wav", y[:, None], fs, subtype="PCM_16")
        (session / "session.json").write_text(json.dumps({
            "format": "backpop-session/1", "subject": "HEART", "session": "real-heart",
            "start": "2026-01-01T00:00:00Z", "strap": "digital-stethoscope",
            "mics": [{"name": "L1"}], "imus": [], "audio_offset_s": 0.0}, indent=2) + "\n")
        (session / "truth.csv").write_text("t,level,kind\n")
    return session, spans
