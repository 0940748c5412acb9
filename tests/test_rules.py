"""Red-flag rules R1-R8: scenario histories built with the simulator, a real store and diary
entries; the healthy history and the bundled cohort."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from backpop_sense.diary import DIARY_COLUMNS, read_diary_csv
from backpop_sense.errors import BadInput
from backpop_sense.report.evidence import describe
from backpop_sense.rules import NOT_A_DIAGNOSIS, load_rules, refresh_flags
from backpop_sense.simulate import SimConfig, simulate_session, start_of_day
from backpop_sense.store import Store

BACKPOP = Path(sys.executable).parent / "backpop"
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
SUBJECT = "P1"
VISITS = {
    # name: (day, scenario, seed, extra config)
    "cavitation-0": (0, "twist-cavitation", 11, {}),
    "cavitation-7": (7, "twist-cavitation", 12, {}),
    "snap-0": (0, "snapping", 21, {"snap_level": "L2"}),
    "snap-stiff-7": (7, "snapping", 22, {"snap_level": "L2", "rom_scale": 0.6}),
    "catch-pop-0": (0, "healthy", 31, {"with_catch": True, "catch_pop": 1.0}),
    "catch-quiet-0": (0, "healthy", 32, {"with_catch": True, "catch_pop": 0.0}),
    "fall-7": (7, "post-fall", 41, {"with_fall": True, "pop_scale": 2.0}),
    "healthy-0": (0, "healthy", 51, {}),
    "healthy-7": (7, "healthy", 52, {}),
}


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-minute sessions at 8 kHz and 100 Hz (small and quick to analyse), made on demand."""
    root = tmp_path_factory.mktemp("visits")
    made: dict[str, Path] = {}

    class Lazy(dict):
        def __missing__(self, name: str) -> Path:
            day, scenario, seed, extra = VISITS[name]
            start = start_of_day(day)
            path = root / name
            simulate_session(path, SimConfig(scenario, minutes=1.0, seed=seed, sr=8000,
                                             imu_rate=100.0, subject=SUBJECT, start=start,
                                             session=f"{start:%Y-%m-%d}-{name}", **extra))
            self[name] = path
            return path

    return Lazy(made)


def _entry(time: pd.Timestamp, pain: float = 0, stiffness: float = 0, note: str = "",
           **flags: int) -> dict:
    row = {c: 0 for c in DIARY_COLUMNS}
    row.update(time=time, pain=pain, stiffness=stiffness, note=note, **flags)
    return row


def _history(tmp_path: Path, visits: dict[str, Path], names: list[str],
             diary: list[dict] = ()) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with Store(tmp_path / "store.db") as store:
        for name in names:
            store.ingest(visits[name])
        if diary:
            store.add_diary(SUBJECT, pd.DataFrame(list(diary), columns=list(DIARY_COLUMNS)),
                            "test")
        flags = refresh_flags(store, SUBJECT)
        stored = store.flags(SUBJECT)
    assert sorted(stored["rule_id"]) == sorted(f.rule_id for f in flags)
    for f in flags:
        assert f.note == NOT_A_DIAGNOSIS and f.reason and f.evidence
        assert f.first_seen <= f.last_seen
    return {f.rule_id: f for f in flags}


def _after(visits: dict[str, Path], name: str, hours: float) -> pd.Timestamp:
    day = VISITS[name][0]
    return pd.Timestamp(start_of_day(day)) + timedelta(minutes=1, hours=hours)


def _first_pop(visits: dict[str, Path], name: str) -> pd.Timestamp:
    truth = pd.read_csv(visits[name] / "truth.csv")
    return pd.Timestamp(start_of_day(VISITS[name][0])) + timedelta(seconds=float(truth.t[0]))


def test_healthy_history_raises_nothing(tmp_path: Path, visits: dict[str, Path]) -> None:
    names = ["healthy-0", "healthy-7"]
    diary = [_entry(_after(visits, n, 3), pain=1, stiffness=1, note="fine") for n in names]
    assert _history(tmp_path, visits, names, diary) == {}


def test_r1_pain_with_popping_in_several_sessions(tmp_path: Path,
                                                  visits: dict[str, Path]) -> None:
    names = ["cavitation-0", "cavitation-7"]
    diary = [_entry(_after(visits, n, 2), pain=5, note="sore") for n in names]
    flags = _history(tmp_path, visits, names, diary)
    assert flags["R1"].severity == "consult"
    assert flags["R1"].evidence["sessions_with_pops_and_pain"] == 2
    # the same pain in only one of the two sessions with pops is not "consistent"
    flags = _history(tmp_path / "one", visits, names, diary[:1])
    assert "R1" not in flags


def test_r2_sharp_pain_right_after_a_pop(tmp_path: Path, visits: dict[str, Path]) -> None:
    pop = _first_pop(visits, "cavitation-0")
    diary = [_entry(pop + timedelta(minutes=5), pain=3, note="Stabbing when it popped")]
    flags = _history(tmp_path, visits, ["cavitation-0"], diary)
    assert flags["R2"].evidence["after_pops"][0]["note"] == "Stabbing when it popped"


def test_r2_pain_rising_over_weeks(tmp_path: Path, visits: dict[str, Path]) -> None:
    diary = [_entry(pd.Timestamp(start_of_day(d, hour=8)), pain=1 + d / 3) for d in range(0, 15, 2)]
    flags = _history(tmp_path, visits, ["cavitation-0", "cavitation-7"], diary)
    trend = flags["R2"].evidence["trend"]
    assert trend["slope_per_week"] == pytest.approx(7 / 3, abs=0.05)
    assert "R1" not in flags  # pain below 4 around the sessions


def test_r3_range_of_motion_below_own_baseline(tmp_path: Path, visits: dict[str, Path]) -> None:
    flags = _history(tmp_path, visits, ["snap-0", "snap-stiff-7"])
    [restricted] = flags["R3"].evidence["restricted_range"]
    assert restricted["session"].endswith("snap-stiff-7") and restricted["axis"] == "flexion"
    assert restricted["ratio"] == pytest.approx(0.6, abs=0.12)


def test_r4_catch_with_a_pop_and_not_without(tmp_path: Path, visits: dict[str, Path]) -> None:
    flags = _history(tmp_path, visits, ["catch-pop-0"])
    [event] = flags["R4"].evidence["events"]
    assert abs(event["pops"][0]["seconds_from_catch"]) < 1.0
    assert "R4" not in _history(tmp_path / "quiet", visits, ["catch-quiet-0"])


@pytest.mark.parametrize("symptom", ["numbness", "tingling", "weakness"])
def test_r5_neurological_symptom_is_urgent_every_time(tmp_path: Path, visits: dict[str, Path],
                                                       symptom: str) -> None:
    when = _after(visits, "healthy-0", 5)
    flags = _history(tmp_path, visits, ["healthy-0"], [_entry(when, **{symptom: 1})])
    assert list(flags) == ["R5"] and flags["R5"].severity == "urgent"
    # whatever else is there: many other flags, and a second report, each listed
    busy = ["snap-0", "snap-stiff-7", "catch-pop-0"]
    diary = [_entry(_after(visits, n, 1), pain=8, stiffness=8, note="sharp") for n in busy]
    diary += [_entry(when, **{symptom: 1}), _entry(when + timedelta(days=9), **{symptom: 1})]
    flags = _history(tmp_path / "busy", visits, busy, diary)
    assert len(flags) >= 4 and flags["R5"].severity == "urgent"
    assert flags["R5"].evidence["count"] == 2
    assert next(iter(flags)) == "R5"  # most severe first


def test_r6_swelling_or_bruising(tmp_path: Path, visits: dict[str, Path]) -> None:
    flags = _history(tmp_path, visits, ["cavitation-0"],
                     [_entry(_after(visits, "cavitation-0", 1), bruising=1)])
    assert flags["R6"].severity == "consult"
    assert flags["R6"].evidence["entries"][0]["symptoms"] == ["bruising"]


def test_r7_same_spot_across_sessions_monitor_then_consult_with_pain(
        tmp_path: Path, visits: dict[str, Path]) -> None:
    flags = _history(tmp_path, visits, ["snap-0", "snap-stiff-7"])
    [spot] = flags["R7"].evidence["spots"]
    assert spot["level"] == "L2" and len(spot["sessions"]) == 2
    assert flags["R7"].severity == "monitor"
    diary = [_entry(_after(visits, "snap-0", 1), pain=6)]
    assert _history(tmp_path / "pain", visits, ["snap-0", "snap-stiff-7"],
                    diary)["R7"].severity == "consult"


def test_r8_new_popping_after_a_fall(tmp_path: Path, visits: dict[str, Path]) -> None:
    flags = _history(tmp_path, visits, ["healthy-0", "fall-7"])
    [trauma] = flags["R8"].evidence["traumas"]
    assert trauma["trauma"].startswith("fall measured")
    assert trauma["pops_after"] >= 1
    [line] = describe("R8", flags["R8"].evidence).details
    rates = re.findall(r"([\d.]+) pops per recorded minute after against ([\d.]+) before", line)
    assert rates == [(f"{trauma['rate_after_per_min']:g}",
                      f"{trauma['rate_before_per_min']:g}")]
    assert all(len(rate.partition(".")[2]) <= 2 for rate in rates[0])


def test_r8_reported_trauma_counts_too(tmp_path: Path, visits: dict[str, Path]) -> None:
    trauma = pd.Timestamp(start_of_day(5))
    flags = _history(tmp_path, visits, ["healthy-0", "cavitation-7"],
                     [_entry(trauma, note="car accident", trauma=1)])
    assert flags["R8"].evidence["traumas"][0]["trauma"] == "trauma reported: car accident"


def test_bundled_cohort_raises_what_it_was_built_for(tmp_path: Path) -> None:
    with Store(tmp_path / "samples.db") as store:
        raised = {}
        for subject in ("S01", "S02"):
            for path in sorted((SAMPLES / subject).glob("*/session.json")):
                store.ingest(path.parent)
            store.add_diary(subject, read_diary_csv(SAMPLES / subject / "diary.csv"), "import")
            raised[subject] = {f.rule_id: f.severity for f in refresh_flags(store, subject)}
    assert raised["S01"] == {}
    assert raised["S02"] == {"R1": "consult", "R2": "consult", "R3": "consult",
                             "R4": "consult", "R5": "urgent", "R7": "consult",
                             "R8": "consult"}


def test_rule_file_is_checked(tmp_path: Path) -> None:
    rules = load_rules()
    assert set(rules) >= {f"R{i}" for i in range(1, 9)}
    bad = tmp_path / "rules.toml"
    text = (Path(__file__).resolve().parent.parent / "backpop_sense" / "rules" /
            "redflags.toml").read_text()
    bad.write_text(text.replace('severity = "urgent"', 'severity = "panic"'))
    with pytest.raises(BadInput, match=r"\[R5\] severity"):
        load_rules(bad)
    bad.write_text(text + "\n[R9]\ntitle = 'x'\n")
    with pytest.raises(BadInput, match="R9"):
        load_rules(bad)


DEFAULT_TEXT = (Path(__file__).resolve().parent.parent / "backpop_sense" / "rules" /
                "redflags.toml").read_text(encoding="utf-8")
def _without_r6(text: str) -> str:
    return text[:text.index("[R6]")] + text[text.index("[R7]"):]


BAD_RULES = [
    # id, how the default file is changed, where the error must point, what the reason says
    ("syntax", lambda t: t.replace("pain_min = 4.0", "pain_min = = 4.0", 1), "line 17",
     "not valid TOML"),
    ("unclosed-table", lambda t: t.replace("[R4]", "[R4", 1), "line 41", "not valid TOML"),
    ("threshold-text", lambda t: t.replace("pain_min = 4.0", 'pain_min = "four"', 1),
     "[R1] pain_min", "must be a number, not 'four'"),
    ("threshold-bool", lambda t: t.replace("window_s = 2.0", "window_s = true", 1),
     "[R4] window_s", "must be a number, not True"),
    ("threshold-list", lambda t: t.replace("rate_factor = 1.5", "rate_factor = [1.5]", 1),
     "[R8] rate_factor", "must be a number, not [1.5]"),
    ("count-fraction", lambda t: t.replace("baseline_sessions = 3", "baseline_sessions = 2.5"),
     "[R3] baseline_sessions", "must be a whole number, not 2.5"),
    ("pain-out-of-scale", lambda t: t.replace("stiffness_min = 6.0", "stiffness_min = 60.0"),
     "[R3] stiffness_min", "60 is outside 0-10"),
    ("nan", lambda t: t.replace("min_share = 0.5", "min_share = nan"), "[R7] min_share",
     "nan is outside 0-1"),
    ("days-1e300", lambda t: t.replace("follow_days = 30.0", "follow_days = 1e300"),
     "[R8] follow_days", "1e+300 is outside 0-3650"),
    ("negative-hours", lambda t: t.replace("after_session_h = 6.0", "after_session_h = -6.0"),
     "[defaults] after_session_h", "-6 is outside 0-720"),
    ("unknown-field", lambda t: t.replace("window_s = 2.0", "window_s = 2.0\nwindow_ms = 1"),
     "[R4] window_ms", "no such field in R4 (it has title, severity, reason, window_s)"),
    ("missing-field", lambda t: t.replace("min_pops_after = 1", ""), "[R8] min_pops_after",
     "is missing"),
    ("unknown-severity", lambda t: t.replace('painful_severity = "consult"',
                                             'painful_severity = "dire"'),
     "[R7] painful_severity", "'dire' is not one of urgent, consult, monitor, info"),
    ("words-not-text", lambda t: t.replace('"shooting"]', '"shooting", 7]'),
     "[R2] sharp_words", "must be a list of words"),
    ("span-missing-axis", lambda t: t.replace(", twist = 10.0 }", " }"),
     "[R3] min_span_deg", "must give a number for each of flexion, lateral, twist"),
    ("span-axis-text", lambda t: t.replace("twist = 10.0 }", 'twist = "ten" }'),
     "[R3] min_span_deg.twist", "must be a number, not 'ten'"),
    ("unknown-rule", lambda t: t.replace("[R6]", "[R6b]"), "[R6b]",
     "no such rule (the rules are R1, R2, R3, R4, R5, R6, R7, R8 and defaults)"),
    ("rule-not-a-table", lambda t: "R6 = 1\n" + _without_r6(t), "[R6]",
     "must be a table of fields, not 1"),
    ("rule-missing", _without_r6, "[R6]", "rule is missing"),
]



@pytest.mark.parametrize(("change", "where", "reason"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_RULES])
def test_a_bad_rule_file_names_the_field(tmp_path: Path, change, where: str,  # noqa: ANN001
                                         reason: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(change(DEFAULT_TEXT), encoding="utf-8")
    with pytest.raises(BadInput) as err:
        load_rules(path)
    assert err.value.file == str(path)
    assert err.value.where == where
    assert err.value.reason.startswith(reason), err.value.reason


@pytest.mark.parametrize(("content", "reason"), [
    (None, "file is missing"), (b"\xff\xfe[R1]", "not a UTF-8 text file"),
    (b"#" * (2 << 20), "2097152 bytes: a rule file is at most 1048576 bytes"),
])
def test_a_rule_file_that_is_not_text_is_named(tmp_path: Path, content: bytes | None,
                                               reason: str) -> None:
    path = tmp_path / "lab.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInput) as err:
        load_rules(path)
    assert (err.value.file, err.value.where, err.value.reason) == (str(path), None, reason)


def test_a_rule_file_may_have_a_byte_order_mark_and_leave_defaults_out(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    text = DEFAULT_TEXT.replace("[defaults]\nafter_session_h = 6.0\n", "")
    path.write_text("\ufeff" + text.replace("pain_min = 4.0 ", "pain_min = 5 "), encoding="utf-8")
    rules = load_rules(path)
    assert rules["R1"]["pain_min"] == 5.0 and isinstance(rules["R1"]["pain_min"], float)
    assert rules["defaults"] == {"after_session_h": 6.0}
    assert rules["R2"] == load_rules()["R2"]


def test_sharp_words_are_words_not_patterns(tmp_path: Path) -> None:
    """A word with a regular expression's characters matches itself; it is never an error."""
    from backpop_sense.rules import History
    from backpop_sense.rules.engine import r2_sharp_or_rising_pain

    path = tmp_path / "lab.toml"
    path.write_text(DEFAULT_TEXT.replace('"shooting"]', '"shooting", "(sharp", "c++"]'))
    rules = load_rules(path)
    t0 = pd.Timestamp("2026-11-20T09:00:00Z")
    pops = pd.DataFrame({"session": ["s"], "time": [t0]})
    diary = pd.DataFrame({"time": [t0 + pd.Timedelta(minutes=m) for m in (5, 10, 15)],
                          "pain": [1.0, 1.0, 1.0], "note": ["(sharp!", "C++ pain", "sharpish"]})
    empty = pd.DataFrame()
    flag = r2_sharp_or_rising_pain(History(empty, pops, empty, empty, diary), rules["R2"])
    assert [e["note"] for e in flag.evidence["after_pops"]] == ["(sharp!", "C++ pain",
                                                                "sharpish"]
    rules["R2"]["sharp_words"] = []
    assert r2_sharp_or_rising_pain(History(empty, pops, empty, empty, diary),
                                   rules["R2"]) is None


def test_cli_names_the_rule_file_and_field(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    entry = {c: 0 for c in DIARY_COLUMNS} | {"time": pd.Timestamp("2026-11-20T09:00Z"),
                                               "note": ""}
    with Store(db) as store:
        store.add_diary(SUBJECT, pd.DataFrame([entry]), "test")
    rules = tmp_path / "my rules.toml"
    rules.write_text(DEFAULT_TEXT.replace("window_s = 2.0", "window_s = [2]"))
    for command in ("flags", "report"):
        run = subprocess.run([str(BACKPOP), command, SUBJECT, "--rules", str(rules), "--db",
                              str(db), "-o" if command == "report" else "--json",
                              *([str(tmp_path / "r.html")] if command == "report" else [])],
                             capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert run.stderr == (f"backpop: error: {rules}: [R4] window_s: must be a number, "
                              "not [2]\n")


def test_cli_ingest_diary_and_flags(tmp_path: Path, visits: dict[str, Path]) -> None:
    db = str(tmp_path / "cli.db")

    def backpop(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BACKPOP), *args, "--db", db], capture_output=True, text=True)

    first = backpop("ingest", str(visits["healthy-0"]))
    assert first.returncode == 0, first.stderr
    assert "stored" in first.stdout and "0 red flags" in first.stdout
    again = backpop("ingest", str(visits["healthy-0"]))
    assert "unchanged" in again.stdout
    added = backpop("diary", "add", SUBJECT, "--pain", "3", "--tingling", "--note",
                    "pins and needles", "--time", "2026-11-02T18:00:00Z")
    assert added.returncode == 0, added.stderr
    assert "URGENT" in added.stdout
    out = backpop("flags", SUBJECT, "--json")
    doc = json.loads(out.stdout)
    assert [f["rule_id"] for f in doc["flags"]] == ["R5"]
    assert doc["flags"][0]["evidence"]["entries"][0]["note"] == "pins and needles"
    listed = backpop("diary", "list", SUBJECT)
    assert "pins and needles" in listed.stdout
    for args, field in ((("diary", "add", SUBJECT, "--pain", "11"), "--pain"),
                        (("diary", "add", "bad id!", "--pain", "1"), "subject"),
                        (("flags", "NOBODY"), "NOBODY")):
        run = backpop(*args)
        assert run.returncode == 2, run.stdout
        assert len(run.stderr.strip().splitlines()) == 1 and field in run.stderr
