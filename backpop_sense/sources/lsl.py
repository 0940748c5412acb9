"""Lab Streaming Layer outlets for a strap's stream (``record --lsl``, ``replay --lsl``).

While a session streams, :class:`Outlets` publishes it on the lab network, so that LabRecorder
records it in one XDF file with the lab's other devices (EMG, motion capture, video): the
audio (one channel per mic), each IMU, and the pipeline's events as markers. The streams, their
metadata and the markers' JSON are a format the project owns (docs/formats.md, "Lab Streaming
Layer streams"); :mod:`.xdf` reads them back.

Time: a sample at session time ``t`` (s) is stamped ``anchor + t`` on LSL's clock
(:func:`pylsl.local_clock`, s), ``anchor`` being the LSL time of session time 0: the earliest
arrival of a block's end, relative to its session time, over the first :data:`SETTLE_S` of the
stream, which is held back until then (a link's first packets come late, in a burst, after
the connection is made). Session times are already on the strap's audio
clock (the BLE decoder maps the strap's own timestamp clock onto it, :mod:`.packets`, as the
recorded files have them), so the stamps are regular and sample-exact, and a marker is stamped
with the time of its sound, not the time it was found.

pylsl (the ``lsl`` extra) is imported when outlets are opened: importing this module is free.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..blocks import AudioBlock, Block, Gap, ImuBlock
from ..correlate import PopInContext
from ..errors import BadInput
from ..motion.tracker import MotionEvent
from ..params import NON_NEGATIVE, Instance, OrNone, Rules, check
from ..pops.stage import Heard, Pop, Rejected
from ..session import DEFAULT_AXES
from ..vocab import ANGLE_COLUMNS, IMU_CHANNELS, LSL_FORMAT, LSL_TYPES

if TYPE_CHECKING:
    from ..pipeline import Recording, SessionResult, Source

AUDIO_UNIT = "full scale"
"""Unit of the audio channels: samples in -1..1, as in ``mic.wav``."""
IMU_UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3
"""Units of the IMU channels, :data:`~backpop_sense.vocab.IMU_CHANNELS` order (body axes)."""
IMU_TYPES = ("Accelerometer",) * 3 + ("Gyroscope",) * 3
SETTLE_S = 1.0
"""Session time over which the anchor is found before anything is published, seconds."""
LINGER_S = 1.0
"""How long outlets stay up after the last sample when a consumer is connected, seconds: LSL
drops what a consumer has not pulled yet when an outlet goes (LabRecorder pulls every 0.5 s)."""
STREAM_NAMES = {"audio": "backpop-audio", "imu": "backpop-imu-{imu}", "events": "backpop-events"}
"""Stream names by role; an IMU's carries its name from ``session.json``."""


@dataclass(frozen=True)
class LslConfig:
    """How a stream is published on LSL.

    Attributes
    ----------
    source_id : str, optional
        What names the strap; each outlet's LSL source id is it plus the stream
        (``<source_id>:audio``...). LabRecorder keeps one stream per source id across the
        link's reconnections and across restarts of the publisher. None: the caller's default
        (the strap's address or the subject, :func:`default_source_id`).
    wait_s : float
        How long to wait before streaming for a consumer (LabRecorder, an inlet) on every
        outlet, seconds; 0 starts at once. LSL does not keep samples for a consumer that
        connects later, so a recording that must hold the start waits.
    """

    source_id: str | None = None
    wait_s: float = 0.0

    RULES: ClassVar[Rules] = {"source_id": OrNone(Instance(str, "text")),
                              "wait_s": NON_NEGATIVE}

    def __post_init__(self) -> None:
        check(self)


def default_source_id(strap: str, key: str) -> str:
    """``backpop:<strap profile>:<key>``, the key being what stays the same from one run to
    the next: the strap's address when it is known, else the subject and session."""
    return f"backpop:{strap}:{key}"


def open_outlets(recording: Recording, config: LslConfig, default_id: str) -> Outlets:
    """The outlets of ``recording`` (source id ``config.source_id`` or ``default_id``), once
    every one has a consumer or ``config.wait_s`` seconds have passed."""
    outlets = Outlets(recording, config.source_id or default_id)
    if config.wait_s > 0:
        outlets.wait_for_consumers(config.wait_s)
    return outlets


def _pylsl() -> Any:
    try:
        import pylsl
    except ImportError as exc:
        raise BadInput("lsl", None, f"publishing needs pylsl ({exc}): pip install "
                       "'backpop-sense[lsl]'") from None
    return pylsl


def _number(x: float | None) -> float | None:
    """JSON has no NaN or infinity: a value that is not finite is null."""
    return None if x is None or not math.isfinite(x) else float(x)


def marker(output: object, *, final: bool = False, heard: set[float] | None = None
           ) -> dict[str, Any] | None:
    """The marker of one pipeline output, as the events stream carries it (a JSON object,
    docs/formats.md), or None for an output that is no event (motion frames, rejections of
    onsets not announced).

    This is the one place that decides what a marker says. A pop is announced as soon as it
    is heard (:class:`~backpop_sense.pops.stage.Heard`: ``pop`` with time, level, strength,
    about 0.1 s after its sound, on the gate's provisional verdict); the gate's final verdict
    follows seconds later as ``pop_confirmed`` (a :class:`Pop`) or ``pop_overruled`` (a
    :class:`Rejected` of a pop announced); then ``pop_placed`` once it is placed in its
    motion context (:class:`PopInContext`: kind, context and angles; the kind is ``unknown``
    until the session ends) and, with ``final``, ``pop_typed`` with the kind the end of the
    session gave it. Catches, falls and gaps are announced once. ``t`` is always in seconds
    since the session start. ``heard`` holds the times of the pops announced and not yet
    judged: this call adds a heard pop's and takes a judged one's away.

    Examples
    --------
    >>> from backpop_sense.motion.tracker import MotionEvent
    >>> from backpop_sense.sources.lsl import marker
    >>> marker(MotionEvent(12.5, "fall", "impact 3.1 g"))
    {'event': 'fall', 't': 12.5, 'detail': 'impact 3.1 g'}
    """
    heard = set() if heard is None else heard
    if isinstance(output, Heard):
        heard.add(output.t)
        pop = output.pop
        return {"event": "pop", "t": pop.t, "level": pop.level,
                "strength": _number(pop.strength), "amplitude_db": _number(pop.amplitude_db)}
    if isinstance(output, Pop):
        was_heard = output.t in heard
        heard.discard(output.t)
        return {"event": "pop_confirmed", "t": output.t, "level": output.level,
                "heard": was_heard}
    if isinstance(output, Rejected):
        if output.t not in heard:
            return None
        heard.discard(output.t)
        return {"event": "pop_overruled", "t": output.t, "reason": output.reason}
    if isinstance(output, PopInContext):
        angles = (output.flexion_deg, output.lateral_deg, output.twist_deg)
        return {"event": "pop_typed" if final else "pop_placed", "t": output.t,
                "level": output.pop.level, "kind": output.kind, "context": output.context,
                **{c: _number(a) for c, a in zip(ANGLE_COLUMNS, angles, strict=True)}}
    if isinstance(output, MotionEvent):
        return {"event": output.type, "t": output.t, "detail": output.detail}
    if isinstance(output, Gap):
        return {"event": "gap", "t": output.t_start, "t_end": output.t_end,
                "stream": output.stream, "reason": output.reason}
    return None


def _describe(info: Any, meta: dict[str, str], channels: list[dict[str, str]]) -> Any:
    """Fill a StreamInfo's ``desc``: ``backpop`` (what the stream is, for :mod:`.xdf`) and
    ``channels`` (label, unit, type of each, as LSL's meta-data conventions have them)."""
    desc = info.desc()
    backpop = desc.append_child("backpop")
    for key, value in meta.items():
        backpop.append_child_value(key, value)
    chans = desc.append_child("channels")
    for channel in channels:
        node = chans.append_child("channel")
        for key, value in channel.items():
            node.append_child_value(key, value)
    return info


def stream_infos(recording: Recording, source_id: str) -> dict[str, Any]:
    """The StreamInfo of every stream of ``recording``, keyed ``audio``, ``imu:<name>``,
    ``events``: names, types, rates (Hz), channel metadata and ``desc/backpop``."""
    pylsl = _pylsl()
    info = recording.info
    common = {"format": LSL_FORMAT, "subject": info.subject, "session": info.session,
              "start": info.to_json()["start"], "strap": info.strap,
              "audio_offset_s": repr(info.audio_offset_s)}
    out: dict[str, Any] = {}
    if recording.audio is not None:
        out["audio"] = _describe(
            pylsl.StreamInfo(STREAM_NAMES["audio"], LSL_TYPES["audio"], len(info.mics),
                             recording.audio.sr, "float32", f"{source_id}:audio"),
            {**common, "role": "audio"},
            [{"label": m.name, "unit": AUDIO_UNIT, "type": "ContactMic", "level": m.name}
             for m in info.mics])
    for imu in info.imus:
        out[f"imu:{imu.name}"] = _describe(
            pylsl.StreamInfo(STREAM_NAMES["imu"].format(imu=imu.name), LSL_TYPES["imu"],
                             len(IMU_CHANNELS), recording.imu_rates[imu.name], "double64",
                             f"{source_id}:imu-{imu.name}"),
            {**common, "role": "imu", "imu": imu.name, "level": imu.level,
             "axes": DEFAULT_AXES, "mounting": imu.mounting},
            [{"label": c, "unit": u, "type": k}
             for c, u, k in zip(IMU_CHANNELS, IMU_UNITS, IMU_TYPES, strict=True)])
    out["events"] = _describe(
        pylsl.StreamInfo(STREAM_NAMES["events"], LSL_TYPES["events"], 1, pylsl.IRREGULAR_RATE,
                         "string", f"{source_id}:events"),
        {**common, "role": "events"},
        [{"label": "event", "unit": "JSON", "type": "Marker"}])
    return out


def _end_of(block: Block) -> float:
    """Session time (s) of the last thing a block tells of."""
    if isinstance(block, ImuBlock):
        return float(block.t[-1])
    return block.t_end


class Outlets:
    """The LSL outlets of one streamed session: ``push_block`` as blocks come,
    ``push_outputs`` with what the pipeline made of them, ``finish`` with its result.

    Parameters
    ----------
    recording : Recording
        What is streamed (mics, IMUs, rates, subject and session).
    source_id : str
        Names the strap; see :class:`LslConfig`.
    clock : callable, optional
        LSL's clock, seconds (:func:`pylsl.local_clock` by default).

    Examples
    --------
    >>> from backpop_sense.pipeline import analyze
    >>> from backpop_sense.sources.lsl import Outlets
    >>> from backpop_sense.sources.replay import ReplaySource
    >>> source = ReplaySource("data/samples/S01/2026-11-02a")
    >>> with Outlets(source.session, "backpop:replay:S01") as outlets:  # doctest: +SKIP
    ...     result = analyze(outlets.publish(source), on_output=outlets.on_output)
    ...     outlets.finish(result)
    """

    def __init__(self, recording: Recording, source_id: str, *,
                 clock: Callable[[], float] | None = None) -> None:
        pylsl = _pylsl()
        self.clock = clock or pylsl.local_clock
        self.outlets = {key: pylsl.StreamOutlet(info)
                        for key, info in stream_infos(recording, source_id).items()}
        self.anchor: float | None = None
        self._earliest = math.inf  # arrival - session time of the blocks held back, s
        self._held: list[Block] = []
        self._held_markers: list[tuple[object, bool]] = []
        self._marked: set[tuple[str, float]] = set()
        self._heard: set[float] = set()  # pops announced, not yet judged (see marker)

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait until every outlet has a consumer, at most ``timeout_s`` seconds; whether
        they all have one."""
        deadline = time.monotonic() + timeout_s
        return all(o.wait_for_consumers(max(0.0, deadline - time.monotonic()))
                   for o in self.outlets.values())

    def push_block(self, block: Block) -> None:
        """Publish a block's samples, stamped with their session times on LSL's clock (gaps
        are published as markers, by :meth:`push_outputs`, as the pipeline reports them).
        Over the first :data:`SETTLE_S` the blocks are held back while the anchor is found."""
        if self.anchor is not None:
            self._push_samples(block)
            return
        self._earliest = min(self._earliest, self.clock() - _end_of(block))
        self._held.append(block)
        if _end_of(block) - self._held[0].t0 >= SETTLE_S:
            self._settle()

    def _settle(self) -> None:
        """Fix the anchor and publish what was held back."""
        self.anchor = self._earliest if math.isfinite(self._earliest) else self.clock()
        for block in self._held:
            self._push_samples(block)
        for output, final in self._held_markers:
            self.push_outputs([output], final=final)
        self._held, self._held_markers = [], []

    def _push_samples(self, block: Block) -> None:
        if isinstance(block, AudioBlock):
            # The stamp of the chunk's last sample; LSL derives the others from the rate.
            self.outlets["audio"].push_chunk(block.data, self.anchor + block.t_end -
                                             1.0 / block.sr)
        elif isinstance(block, ImuBlock):
            self.outlets[f"imu:{block.imu}"].push_chunk(np.hstack([block.acc, block.gyro]),
                                                       (self.anchor + block.t).tolist())

    def push_outputs(self, outputs: Iterable[object], *, final: bool = False) -> None:
        """Publish the markers of the pipeline's outputs (:func:`marker`), each stamped with
        the session time it is about."""
        for output in outputs:
            if self.anchor is None:
                self._held_markers.append((output, final))
                continue
            m = marker(output, final=final, heard=self._heard)
            if m is None:
                continue
            self.outlets["events"].push_sample([json.dumps(m, allow_nan=False)],
                                               self.anchor + m["t"])
            self._marked.add((m["event"], m["t"]))

    def on_output(self, outputs: list, block: Block | None = None) -> None:
        """:func:`~backpop_sense.pipeline.analyze`'s ``on_output`` hook."""
        self.push_outputs(outputs)

    def finish(self, result: SessionResult) -> None:
        """Publish what only the end of the session told: each pop with its kind
        (``pop_typed``), and the catches and falls found when the stream was flushed."""
        if self.anchor is None:  # a stream shorter than SETTLE_S
            self._settle()
        self.push_outputs(e for e in result.motion_events
                          if (e.type, e.t) not in self._marked)
        self.push_outputs(result.pops, final=True)

    def publish(self, source: Source) -> Source:
        """``source`` with every block published as it passes to the pipeline."""
        return _Published(source, self)

    def close(self) -> None:
        """Withdraw the outlets from the network, once a connected consumer has had
        :data:`LINGER_S` to pull the last samples."""
        if self.anchor is None and self.outlets:
            self._settle()
        if any(o.have_consumers() for o in self.outlets.values()):
            time.sleep(LINGER_S)
        self.outlets.clear()

    def __enter__(self) -> Outlets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Published:
    """A source whose blocks are published on LSL as they are handed on."""

    def __init__(self, source: Source, outlets: Outlets) -> None:
        self.source = source
        self.outlets = outlets

    @property
    def session(self) -> Recording:
        return self.source.session

    def __iter__(self) -> Iterator[Block]:
        for block in self.source:
            self.outlets.push_block(block)
            yield block
