"""A small XDF writer for the tests: the chunks LabRecorder writes, enough for pyxdf to read.

XDF 1.0: the magic ``XDF:``, then chunks ``[NumLengthBytes (1, 4 or 8)][Length][Tag (uint16)]
[Content]``, Length counting the tag and the content. Tags used: 1 FileHeader (XML), 2
StreamHeader (stream id, the stream's ``<info>`` XML as LSL gives it), 3 Samples (stream id,
count, then per sample a time stamp and the values), 4 ClockOffset (stream id, collection time,
offset), 6 StreamFooter (stream id, XML with the sample count).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUMERIC = {"float32": "<f4", "double64": "<f8", "int16": "<i2", "int32": "<i4"}
CHUNK_SAMPLES = 4096


@dataclass
class XdfStream:
    """One stream to write: its header XML (``StreamInfo.as_xml()``), time stamps (s, the
    recording computer's clock before ``clock_offset``) and values, shape (n, channels) for
    numeric formats, a list of strings for a one-channel string stream. ``footer_count``
    overrides the sample count of the footer (a file whose data were cut off)."""

    header_xml: str
    channel_format: str
    stamps: np.ndarray
    values: np.ndarray | list[str]
    footer_count: int | None = None


def _varlen(n: int) -> bytes:
    if n < 1 << 8:
        return struct.pack("<BB", 1, n)
    if n < 1 << 32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _samples(sid: int, s: XdfStream, a: int, b: int) -> bytes:
    n = b - a
    if s.channel_format == "string":
        body = b"".join(b"\x08" + struct.pack("<d", t) + _varlen(len(v.encode())) + v.encode()
                        for t, v in zip(s.stamps[a:b], s.values[a:b], strict=True))
    else:
        values = np.asarray(s.values[a:b])
        rows = np.zeros(n, dtype=[("tag", "u1"), ("t", "<f8"),
                                  ("v", NUMERIC[s.channel_format], (values.shape[1],))])
        rows["tag"], rows["t"], rows["v"] = 8, s.stamps[a:b], values
        body = rows.tobytes()
    return _chunk(3, struct.pack("<I", sid) + _varlen(n) + body)


def write_xdf(path: Path, streams: list[XdfStream], *, clock_offset: float = 0.0) -> Path:
    """Write ``streams`` to ``path`` as LabRecorder would: headers, samples in chunks of
    :data:`CHUNK_SAMPLES` taken in turn from each stream, two clock offsets (s) per stream,
    footers."""
    out = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, 1):
        out.append(_chunk(2, struct.pack("<I", sid) + s.header_xml.encode()))
    longest = max(len(s.stamps) for s in streams)
    for a in range(0, longest, CHUNK_SAMPLES):
        for sid, s in enumerate(streams, 1):
            if a < len(s.stamps):
                out.append(_samples(sid, s, a, min(a + CHUNK_SAMPLES, len(s.stamps))))
    for sid, s in enumerate(streams, 1):
        for t in (s.stamps[0], s.stamps[-1]) if len(s.stamps) else (0.0, 1.0):
            out.append(_chunk(4, struct.pack("<Idd", sid, t, clock_offset)))
        count = len(s.stamps) if s.footer_count is None else s.footer_count
        out.append(_chunk(6, struct.pack("<I", sid) + (
            f'<?xml version="1.0"?><info><sample_count>{count}</sample_count></info>'
        ).encode()))
    path.write_bytes(b"".join(out))
    return path
