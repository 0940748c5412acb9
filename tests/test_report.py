"""Reports and export on the bundled cohort in a real store: the physiotherapist's subject
report (flags first, user text escaped, nothing fetched), the researcher's session report,
the exported tables, and the subject report in a real headless browser where one is
installed."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from backpop_sense.diary import DIARY_COLUMNS, read_diary_csv
from backpop_sense.errors import BadInput
from backpop_sense.report import export_tables, write_session_report, write_subject_report
from backpop_sense.report.evidence import describe
from backpop_sense.report.render import EVERY_REPORT_SAYS
from backpop_sense.report.tables import TABLES
from backpop_sense.rules import NOT_A_DIAGNOSIS, refresh_flags
from backpop_sense.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
NOTE = "<script>alert(1)</script> & swollen"
SUBJECT_SECTIONS = ["flags", "pops-per-day", "pops-by-context", "range-of-motion", "pain",
                    "catches-falls", "sessions"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled cohort (S01 healthy, S02 flagged) with its diaries, flags evaluated; S02
    also reports swelling with a note that is markup."""
    path = tmp_path_factory.mktemp("report") / "cohort.db"
    with Store(path) as store:
        for subject in ("S01", "S02"):
            for session in sorted((SAMPLES / subject).glob("*/session.json")):
                store.ingest(session.parent)
            store.add_diary(subject, read_diary_csv(SAMPLES / subject / "diary.csv"), "import")
        entry = dict.fromkeys(DIARY_COLUMNS, 0)
        entry.update(time=pd.Timestamp("2026-11-18T19:00:00Z"), pain=5.0, stiffness=4.0,
                     swelling=1, note=NOTE)
        store.add_diary("S02", pd.DataFrame([entry], columns=list(DIARY_COLUMNS)), "cli")
        for subject in ("S01", "S02"):
            refresh_flags(store, subject)
    return path


@pytest.fixture(scope="module")
def s02_report(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """S02's subject report, no session reports beside it."""
    with Store(db) as store:
        return write_subject_report(store, "S02", tmp_path_factory.mktemp("s02") / "S02.html")


class Outline(HTMLParser):
    """What a page is made of: section ids in order, tags, links and image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tags: set[str] = set()
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "section":
            self.sections.append(found.get("id") or "")
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def outline(path: Path) -> Outline:
    parsed = Outline()
    parsed.feed(path.read_text(encoding="utf-8"))
    return parsed


def test_subject_report_leads_with_flags_and_escapes_user_text(db: Path, s02_report: Path
                                                               ) -> None:
    with Store(db) as store:
        flags = store.flags("S02")
    out = s02_report
    html = out.read_text(encoding="utf-8")
    page = outline(out)
    assert page.sections == SUBJECT_SECTIONS
    assert "script" not in page.tags
    assert NOTE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; swollen" in html
    text = " ".join("".join(page.text).split())
    assert NOTE in text
    assert EVERY_REPORT_SAYS in text and NOT_A_DIAGNOSIS in text
    assert "S02" in text and "2 Nov 2026 to 18 Nov 2026" in text
    assert set(flags["rule_id"]) == {"R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8"}
    for f in flags.itertuples():
        assert f'class="flag sev-{f.severity}" id="flag-{f.rule_id}"' in html
        assert " ".join(f.reason.split()) in text
    # Everything is inline (images are data: URIs); no session report, so no link to one.
    assert page.urls and all(u.startswith("data:image/svg+xml;base64,") for u in page.urls)
    assert out.stat().st_size < 5e6


def test_flag_evidence_reads_as_words(db: Path) -> None:
    with Store(db) as store:
        flags = store.flags("S02")
    words = {f.rule_id: describe(f.rule_id, f.evidence) for f in flags.itertuples()}
    for evidence in words.values():
        for line in (evidence.summary, *evidence.details):
            assert not re.search(r"[{}\[\]]|\w_\w", line), line
    assert words["R3"].summary.startswith("Range of motion below 80% of the subject's own")
    assert "L3" in words["R7"].summary
    assert any(NOTE in line for line in words["R6"].details)


def test_session_report_has_provenance(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        out = write_session_report(store, "2026-11-17a", out=tmp_path / "s.html")
        stored = store.sessions("S02").set_index("session").loc["2026-11-17a"]
    html = out.read_text(encoding="utf-8")
    page = outline(out)
    assert page.sections == ["counts", "angles", "snippets", "pops", "motion", "parameters",
                             "provenance"]
    assert "script" not in page.tags
    assert len(page.urls) == 2 and all(u.startswith("data:image/png;base64,")
                                       for u in page.urls)
    text = " ".join("".join(page.text).split())
    assert "4 pops, 4.800 per minute (95% CI 1.308 to 12.290, exact Poisson)" in text
    for file in sorted(Path(stored["source_path"]).iterdir()):
        assert hashlib.sha256(file.read_bytes()).hexdigest() in html
    assert f"{stored['input_sha256']} (the same)" in text
    assert "refractory_s = 1200.0" in text and "catch.arrest_fraction" in text
    assert EVERY_REPORT_SAYS in text


def test_subject_report_links_session_reports(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        out = write_subject_report(store, "S01", tmp_path / "S01.html", session_reports=True)
        sessions = list(store.sessions("S01")["session"])
    links = [u for u in outline(out).urls if u.endswith(".html")]
    assert links == [f"S01/{s}.html" for s in sessions]
    assert all((tmp_path / link).is_file() for link in links)
    assert "No red flags raised" in out.read_text(encoding="utf-8")


def test_unknown_subject_session_or_folder_is_bad_input(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        with pytest.raises(BadInput, match="no such subject"):
            write_subject_report(store, "S99", tmp_path / "x.html")
        with pytest.raises(BadInput, match="not a valid subject"):
            write_subject_report(store, "../S01", tmp_path / "x.html")
        with pytest.raises(BadInput, match="no such session"):
            write_session_report(store, "2026-11-17a", subject="S01", out=tmp_path / "x.html")
        with pytest.raises(BadInput, match="no such subject"):
            export_tables(store, "S99", tmp_path)
        key = ("S02", "2026-11-10a")
        (source,) = store.connection.execute(
            "SELECT source_path FROM sessions WHERE subject_id = ? AND session_id = ?",
            key).fetchone()
        moved = "UPDATE sessions SET source_path = ? WHERE subject_id = ? AND session_id = ?"
        store.connection.execute(moved, (str(tmp_path / "gone"), *key))
        try:
            with pytest.raises(BadInput, match="gone or moved"):
                write_session_report(store, key[1], out=tmp_path / "x.html")
        finally:
            store.connection.execute(moved, (source, *key))
    assert not list(tmp_path.glob("*.html"))


def test_export_writes_every_table(db: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db) as store:
        written = export_tables(store, "S02", tmp_path / "csv")
        pops = store.pops("S02")
        with pytest.raises(BadInput, match="xlsx"):
            export_tables(store, "S02", tmp_path, "xlsx")
        pytest.importorskip("pyarrow")
        parquet = export_tables(store, "S02", tmp_path / "parquet", "parquet")
        again = {p.stem: pd.read_parquet(p) for p in parquet}
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        with pytest.raises(BadInput, match=r"backpop-sense\[parquet\]"):
            export_tables(store, "S02", tmp_path / "none", "parquet")
        monkeypatch.undo()
    assert [p.name for p in written] == [f"{t}.csv" for t in TABLES]
    tables = {p.stem: pd.read_csv(p) for p in written}
    assert len(tables["pops"]) == len(pops) == tables["pops_per_day"]["pops"].sum()
    assert tables["sessions"]["pops"].sum() == len(pops)
    assert json.loads(tables["sessions"]["summary"][0])["session"] == "2026-11-03a"
    assert NOTE in set(tables["diary"]["note"])
    assert tables["diary"]["time"][0] == "2026-11-02T08:30:00.000000Z"
    restricted = tables["range_of_motion"].query("restricted")
    assert list(restricted[["session", "axis"]].itertuples(index=False, name=None)) == [
        ("2026-11-17a", "flexion")]
    assert again["flags"]["rule_id"].tolist() == tables["flags"]["rule_id"].tolist()
    assert not (tmp_path / "none").exists()


def _browser() -> str:
    """The path of an installed Chromium for playwright to drive, or skip saying why."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                        "(pip install -e '.[dev]')")
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium) "
                "to run the browser tests")


def test_subject_report_in_a_browser(s02_report: Path, tmp_path: Path) -> None:
    executable = _browser()
    from playwright.sync_api import sync_playwright

    url = s02_report.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            problems: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in (
                "error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            page.screenshot(path=tmp_path / "first-screen.png")
            sections = page.eval_on_selector_all("main > section", "s => s.map(e => e.id)")
            header = page.locator("header").bounding_box()
            flags = page.locator("#flags").bounding_box()
            note = page.get_by_role("cell", name=NOTE, exact=True)
            note_count, note_text = note.count(), note.first.inner_text()
            images = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        finally:
            browser.close()
    assert problems == []
    assert [r for r in requests if r != url and not r.startswith("data:")] == []
    assert sections == SUBJECT_SECTIONS
    assert note_count == 1 and note_text == NOTE
    assert images and all(images)
    assert header is not None and flags is not None
    assert header["y"] >= 0 and header["y"] + header["height"] <= flags["y"]
    assert flags["y"] + flags["height"] <= 768, "the flags do not fit the first screen"
    assert (tmp_path / "first-screen.png").stat().st_size > 10_000


def test_cli_report_and_export(db: Path, tmp_path: Path) -> None:
    import subprocess

    backpop = Path(sys.executable).parent / "backpop"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(backpop), *args, "--db", str(db)], capture_output=True,
                              text=True)

    made = run("report", "S02", "-o", str(tmp_path / "s02.html"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "s02.html").stat().st_size > 10_000
    one = run("report", "--session", "2026-11-17a", "-o", str(tmp_path / "session.html"))
    assert one.returncode == 0, one.stderr and (tmp_path / "session.html").is_file()
    exported = run("export", "S02", "-o", str(tmp_path / "tables"))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "tables" / "pops.csv").is_file()
    for args in (("report", "NOBODY"), ("report",), ("export", "S02", "-o", str(tmp_path),
                                                       "--format", "xlsx")):
        bad = run(*args)
        assert bad.returncode == 2, (args, bad.stdout)
        assert len(bad.stderr.strip().splitlines()) == 1
