"""What the terminal shows: the live view of a streamed session and a session's summary."""

from __future__ import annotations

from collections import Counter, deque

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .blocks import Gap
from .correlate import PopInContext
from .motion.tracker import MotionEvent, MotionFrame
from .pipeline import SessionResult
from .pops.stage import Heard, Pop, Rejected
from .vocab import KINDS


def _fmt_time(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60.0)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}"


class LiveView:
    """The state of a session as it streams: fed the pipeline's outputs, rendered by rich.

    Shows elapsed stream time, the current context and angles, pops so far by level and kind
    (kinds are decided at the end of the session, so they read ``pending`` until then), the
    last pops (shown when heard, taken off again if the gate's final judgement overrules
    that, their context filled in when the motion catches up, a few seconds later), and
    catches, falls and gaps so far.
    """

    def __init__(self, title: str, *, last: int = 6) -> None:
        self.title = title
        self.elapsed = 0.0
        self.frame: MotionFrame | None = None
        self.by_level: Counter[str] = Counter()
        self.last: deque[PopInContext] = deque(maxlen=last)
        self.events: Counter[str] = Counter()
        self.rejected = 0
        self.provisional: dict[float, Pop] = {}
        """Pops shown as heard, by onset time, until the gate's final judgement of them."""

    def update(self, outputs: list, t: float) -> None:
        """Take what :meth:`Pipeline.feed` returned; ``t`` is the stream time reached, s."""
        self.elapsed = max(self.elapsed, t)
        for o in outputs:
            if isinstance(o, Heard):
                self._show(o.pop)
                self.provisional[o.t] = o.pop
            elif isinstance(o, Pop):
                if self.provisional.pop(o.t, None) is None:  # not heard early: shown now
                    self._show(o)
            elif isinstance(o, Rejected):
                self.rejected += 1
                heard = self.provisional.pop(o.t, None)
                if heard is not None:  # heard early, overruled: no longer shown
                    self.by_level[heard.level] -= 1
                    self.last = deque((p for p in self.last if p.pop is not heard),
                                      maxlen=self.last.maxlen)
            elif isinstance(o, PopInContext):
                # the motion has caught up with a pop already shown: fill in its context
                for i, shown in enumerate(self.last):
                    if shown.t == o.t:  # the pop heard early is another object
                        self.last[i] = o
            elif isinstance(o, MotionFrame):
                self.frame = o
            elif isinstance(o, MotionEvent):
                self.events[o.type] += 1
            elif isinstance(o, Gap):
                self.events["gap"] += 1

    def _show(self, pop: Pop) -> None:
        self.by_level[pop.level] += 1
        self.last.append(PopInContext(pop, context="..."))

    def render(self) -> RenderableType:
        f = self.frame
        head = Text.assemble((f"{self.title}  ", "bold"), f"elapsed {_fmt_time(self.elapsed)}  ")
        if f is None:
            head.append("motion: waiting for the first frame")
        else:
            head.append(f"context {f.context:<8} ", style="bold cyan")
            head.append(f"flexion {f.flexion_deg:+6.1f}  lateral {f.lateral_deg:+6.1f}  "
                        f"twist {f.twist_deg:+6.1f} deg")
        levels = Table(box=box.SIMPLE_HEAD, title="pops so far", title_justify="left")
        levels.add_column("level")
        levels.add_column("pops", justify="right")
        for level, n in sorted(self.by_level.items()):
            levels.add_row(level, str(n))
        levels.add_row("all", str(sum(self.by_level.values())), style="bold")
        recent = Table(box=box.SIMPLE_HEAD, title="last pops", title_justify="left")
        for col in ("time", "level", "context", "flexion", "twist", "kind"):
            recent.add_column(col)
        for p in self.last:
            recent.add_row(_fmt_time(p.t), p.level, p.context,
                           "-" if p.flexion_deg is None else f"{p.flexion_deg:+.0f} deg",
                           "-" if p.twist_deg is None else f"{p.twist_deg:+.0f} deg",
                           "pending")
        events = ", ".join(f"{k} {n}" for k, n in sorted(self.events.items())) or "none"
        foot = Text(f"catches/falls/gaps: {events}; onsets rejected as artifacts: "
                    f"{self.rejected}")
        return Group(head, levels, recent, foot)


def summary_view(result: SessionResult) -> RenderableType:
    """A session's summary: pops by level and kind, by context with rates, the twist/stretch
    rate ratio, recurring pops, range of motion, catches, falls and gaps."""
    s, stats, motion = result.session, result.pop_statistics, result.motion_summary
    minutes = s.duration_s / 60.0
    head = Text.assemble((f"{s.info.subject}/{s.info.session}", "bold"),
                         f"  {minutes:.1f} min, {stats.get('count', 0)} pops "
                         f"({stats.get('per_minute') or 0:.2f}/min), "
                         f"{len(result.rejected)} onsets rejected as artifacts, "
                         f"{len(result.gaps)} gaps")
    kinds = Table(box=box.SIMPLE_HEAD, title="pops by level and kind", title_justify="left")
    kinds.add_column("level")
    for k in KINDS:
        kinds.add_column(k, justify="right")
    nested = stats.get("by_level_kind_context", {})
    for level in sorted(nested):
        kinds.add_row(level, *(str(sum(nested[level].get(k, {}).values()) or "") for k in KINDS))
    contexts = Table(box=box.SIMPLE_HEAD, title="pops by motion context", title_justify="left")
    for col in ("context", "pops", "minutes", "pops/min"):
        contexts.add_column(col, justify="right" if col != "context" else "left")
    spent = motion.get("context_s", {})
    rates = stats.get("rate_per_minute_by_context", {})
    for c in sorted(set(spent) | set(stats.get("by_context", {}))):
        contexts.add_row(c, str(stats.get("by_context", {}).get(c, 0)),
                         f"{spent.get(c, 0.0) / 60:.1f}",
                         f"{rates[c]:.2f}" if c in rates else "-")
    lines = []
    rr = stats.get("twist_stretch_rate_ratio") or {}
    if rr.get("ratio") is not None:
        high = "inf" if rr["high"] is None else f"{rr['high']:.2f}"
        lines.append(f"twist/stretch vs other time: rate ratio {rr['ratio']:.2f} "
                     f"(95 % CI {rr['low']:.2f} to {high}; {rr['events']} vs "
                     f"{rr['other_events']} pops)")
    elif rr:
        lines.append("twist/stretch vs other time: rate ratio undefined "
                     f"({rr.get('events', 0)} vs {rr.get('other_events', 0)} pops)")
    for level, rec in stats.get("recurring", {}).items():
        f = rec["flexion_deg"]
        spread = "" if f["sd"] is None else f" +- {f['sd']:.1f}"
        lines.append(f"recurring at {level}: {rec['count']} pops at flexion "
                     f"{f['mean']:.1f}{spread} deg")
    rom = motion.get("rom_deg", {})
    if rom and all(rom[a]["p5"] is not None for a in rom):
        lines.append("range of motion (5th-95th percentile): " + ", ".join(
            f"{a} {rom[a]['p5']:+.0f} to {rom[a]['p95']:+.0f} deg" for a in rom))
    if motion:
        lines.append(f"catches {motion.get('catches', 0)}, falls {motion.get('falls', 0)}")
    return Group(head, kinds, contexts, *(Text(line) for line in lines))
