"""Masking secret values in a job's output: every occurrence of a value the job uses becomes `***`.

Every place that shows a job's output (the foreground stream, `launch logs`, `launch logs -f`) passes each of its
streams (stdout, stderr) through its own `MaskStream` of one `Masker` built from the job's secret values.

What is masked
    The bytes of each value, wherever they fall: split across reads, across lines (a PEM key), in stderr, next
    to colour codes (only the value's own bytes are replaced, so escapes around it stay intact). A multi-line
    value is also masked in the form a terminal gives it (`\\n` printed as `\\r\\n` by a TTY), since
    `docker run -t` output arrives that way. Other encodings of a value (base64, JSON-escaped, URL-quoted) are
    not recognised: no masker can guess them all, which is why the values never go into output on purpose.
    Overlapping occurrences are masked as one: with values `pass` and `password`, `password` becomes `***`, not
    `***word`; with `abcd` and `cdef`, `abcdef` becomes `***`. No byte of any occurrence is shown.
    Empty values are ignored. Values of one or two bytes are masked too: they garble unrelated output (every `42`
    in the logs becomes `***`), but leaving them visible would show the secret; such a secret is weak anyway,
    and the trade-off is the user's to see, not ours to hide.

What is held back
    A stream holds back only the longest suffix of what it has seen that is a proper prefix of some value
    (usually nothing), so a prompt without a newline appears at once unless it ends with what could be the start
    of a secret; `flush()` at the end of the stream emits whatever is held. An occurrence that starts before that
    suffix is replaced at once, even if an overlapping one may still extend it: its `***` goes out, and the
    stream remembers which of the held bytes it covers.

How it is fast (the "Fast" issue: >= 200 MB/s through a MaskStream with 100 secrets of 8-64 random alphanumeric
bytes over log-like text in 64 KiB reads; `python3 bench/bench_mask.py [--compare]`). Measured on the project's
2-core machine, Python 3.11, in MB per CPU second, while other work was running on it (so +-30%):

    one compiled regex, alternation of the values, longest first  (scan only)      5-6 MB/s
    the same as a trie-shaped regex                                (scan only)     8-10 MB/s
    one `bytes.find` pass per value                                (scan only)    40-46 MB/s
    regex over 4-byte anchors, one per value at its rarest byte    (scan only)   60-120 MB/s
    any regex that can start with two different bytes, no match:   sre's floor    ~125 MB/s
    probes (below) chosen from a fixed table of byte frequencies   (MaskStream)    ~50 MB/s
    probes chosen from the output's own byte counts: this module   (MaskStream) 325-510 MB/s

    The same MaskStream in smaller reads: 16 KiB ~300, 4 KiB ~250, 1 KiB ~80, 128 B ~25 MB/s. A read costs a
    few microseconds whatever its size (one `find` call per probe byte), so readers should read large chunks.

`re` cannot reach the target: as soon as a pattern can start with two different bytes, sre tests every position
in C at ~8 ns/byte, and an alternation of literals costs per alternative at every candidate position. What does
run at memory speed is `bytes.find` of a single byte (memchr: ~1 us for 64 KiB in cache). So each value gets a
*probe*: one of its bytes, chosen rare in the output. The masker finds every occurrence of each probe byte with
`find`, looks up the two bytes at each hit in a dict, and on a match checks the whole value with `startswith`.
A probe byte shared by many values costs one pass for all of them, so a chunk costs a handful of memchr passes
and some dozens of lookups (~0.5 us each). Which bytes are rare depends on the job (timestamps make `T` and `Z`
common, hex ids the digits and `a`-`f`), and a fixed table got it badly wrong (~50 MB/s above), so the masker
starts from such a table and re-chooses its probes from byte counts of the output itself whenever they hit far
more often than expected. Correctness never depends on that choice (every value always has a probe), only speed:
output made of the same bytes as a value (a password of common letters in English text, 1000 random
alphanumeric secrets) is slower, down to the speed of the lookups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

REPLACEMENT = b"***"

# Bytes from most to least common in typical terminal and log output, for the first choice of probes (before
# any output has been seen). Bytes not listed are assumed rarer than all of these.
_COMMON_FIRST = (
    b" etaoinsrlhdcum\n0123456789.:-_/=,\"\r\x1bfpgwybvk'()[]{}<>;ETAOINSRLHDCUMFPGWYBVK\t#@%&*+!?$|\\~^`xjqzXJQZ"
)
_PRIOR = {byte: 0.08 * 0.88**rank for rank, byte in enumerate(_COMMON_FIRST)}

# One more probe pass costs about as much as this fraction of a chunk's bytes being probe hits (memchr over
# 64 KiB in cache plus the call: ~2 us; looking at one hit in Python: ~0.5 us).
_PASS_COST = 1 / 16384
# Re-choose probes when they hit more than twice as often as expected plus this many hits per byte.
_SLACK = 1 / 4096
# Bytes of output seen before the first check of the probes; the period doubles after each re-choice (so a
# stream whose byte mix keeps changing cannot make the masker spend its time re-choosing) up to the maximum.
_FIRST_PERIOD = 64 * 1024
_MAX_PERIOD = 8 * 1024 * 1024
# Byte counts are taken on at most this much of the latest output, and not on less than the minimum.
_SAMPLE = 16 * 1024
_MIN_SAMPLE = 4 * 1024

_Span = tuple[int, int]  # [start, end) of one occurrence of a value


class _Probes:
    """Where to look for values: each probe byte with the values it stands for.

    A value of two or more bytes is found by one of its bytes other than its last, `byte` at `offset` in the
    value, filed under the two bytes starting there, so that a hit costs one dict lookup; a one-byte value is
    its own probe (`whole`).
    """

    __slots__ = ("expected", "table")

    def __init__(self, values: tuple[bytes, ...], alphabets: tuple[frozenset[int], ...], freq: dict[int, float]):
        shared = Counter(byte for alphabet in alphabets for byte in alphabet)
        cost = {byte: freq.get(byte, 0.0) + _PASS_COST / count for byte, count in shared.items()}
        table: dict[int, tuple[bool, dict[bytes, list[tuple[int, bytes]]]]] = {}
        for value, alphabet in zip(values, alphabets, strict=True):
            byte = min(alphabet, key=cost.__getitem__)
            keyed = table.setdefault(byte, (False, {}))[1]
            if len(value) == 1:
                table[byte] = (True, keyed)
            else:
                offset = value.index(byte)
                keyed.setdefault(value[offset : offset + 2], []).append((offset, value))
        self.table = table
        # Probe hits per byte of output that this choice should cost, if the output keeps its byte mix.
        self.expected = sum(freq.get(byte, 0.0) for byte in table)

    def find(self, data: bytes) -> tuple[list[_Span], int]:
        """Every occurrence of every value in `data` (overlapping ones included), sorted; and the probe hits."""
        spans: list[_Span] = []
        hits = 0
        for byte, (whole, keyed) in self.table.items():
            at = data.find(byte)
            while at >= 0:
                hits += 1
                if whole:
                    spans.append((at, at + 1))
                for offset, value in keyed.get(data[at : at + 2], ()):
                    start = at - offset
                    if start >= 0 and data.startswith(value, start):
                        spans.append((start, start + len(value)))
                at = data.find(byte, at + 1)
        spans.sort()
        return spans, hits


def _forms(values: Iterable[bytes]) -> tuple[bytes, ...]:
    """The distinct non-empty values, each also as a TTY prints it (`\\n` as `\\r\\n`), in a fixed order."""
    forms: set[bytes] = set()
    for value in values:
        value = bytes(value)
        if value:
            forms.add(value)
            forms.add(value.replace(b"\n", b"\r\n"))
    return tuple(sorted(forms))


class Masker:
    """Replaces the values of a job's secrets in its output; one per job, one `stream()` per output stream.

    Thread-safe for one stream per thread (stdout and stderr read by two threads): streams share only the probe
    choice, which is replaced whole, and its hit statistics, which only steer speed.
    """

    def __init__(self, values: Iterable[bytes], replacement: bytes = REPLACEMENT):
        self._values = _forms(values)
        self._replacement = bytes(replacement)
        # The proper prefixes of the values, by their last two bytes (longest first), and the first bytes of the
        # values that have a proper prefix: what a stream may have to hold back. Linear in the values' length.
        self._prefix_ends: dict[bytes, list[tuple[int, bytes]]] = {}
        for value in self._values:
            for length in range(len(value) - 1, 1, -1):
                self._prefix_ends.setdefault(value[length - 2 : length], []).append((length, value))
        for ends in self._prefix_ends.values():
            ends.sort(reverse=True)
        self._firsts = frozenset(value[0] for value in self._values if len(value) > 1)
        self._alphabets = tuple(frozenset(value[:-1] or value) for value in self._values)
        self._alphabet = frozenset().union(*self._alphabets)
        self._probes = _Probes(self._values, self._alphabets, _PRIOR)
        self._expected = 0.0  # probe hits per byte expected; unknown until the probes come from the output
        self._period = _FIRST_PERIOD
        self._seen = 0
        self._hits = 0

    def stream(self) -> MaskStream:
        """A new, independent stream state (one for stdout, one for stderr)."""
        return MaskStream(self)

    def mask(self, data: bytes) -> bytes:
        """`data` with every value masked, taken as a whole (nothing held back)."""
        if not self._values:
            return data
        out, _, _ = self._step(data, 0, final=True)
        return out

    def _step(self, data: bytes, covered: int, final: bool) -> tuple[bytes, int, int]:
        """Mask `data` (held bytes plus a new chunk) whose first `covered` bytes are already masked.

        Returns what may be emitted, how many of the held bytes belong to an occurrence whose replacement has
        been emitted already, and where the held-back suffix starts.
        """
        hold = len(data) if final else self._hold_start(data)
        spans, hits = self._probes.find(data)
        self._tune(data, hits)
        return *self._render(data, spans, hold, covered), hold

    def _hold_start(self, data: bytes) -> int:
        """Start of the longest suffix of `data` that is a proper prefix of some value (`len(data)` if none).

        Only such a suffix can begin an occurrence that later reads complete; everything before it is final.
        """
        size = len(data)
        for length, value in self._prefix_ends.get(data[-2:], ()):
            if length <= size and value.startswith(data[size - length :]):
                return size - length
        if size and data[-1] in self._firsts:
            return size - 1
        return size

    def _render(self, data: bytes, spans: list[_Span], hold: int, covered: int) -> tuple[bytes, int]:
        """`data[:hold]` with each run of overlapping occurrences replaced by one replacement.

        The first `covered` bytes continue a run already replaced. Occurrences starting at or after `hold` are
        left for the next step, which sees them again. Returns the output and how far past `hold` the last run
        reaches (those bytes are masked, and an occurrence overlapping them continues that run).
        """
        if not spans and not covered:
            return data[:hold], 0
        pieces: list[bytes] = []
        end = covered
        for start, stop in spans:
            if start >= hold:
                break
            if start < end:
                end = max(end, stop)
            else:
                pieces += (data[end:start], self._replacement)
                end = stop
        if end < hold:
            pieces.append(data[end:hold])
        return b"".join(pieces), max(0, end - hold)

    def _tune(self, data: bytes, hits: int) -> None:
        """Re-choose the probes from the output's own byte counts when they hit far more often than expected."""
        self._seen += len(data)
        self._hits += hits
        if self._seen < self._period:
            return
        if self._hits > (2 * self._expected + _SLACK) * self._seen and len(data) >= _MIN_SAMPLE:
            sample = data[-_SAMPLE:]
            freq = {byte: (sample.count(byte) + _PRIOR.get(byte, 0.0)) / len(sample) for byte in self._alphabet}
            self._probes = _Probes(self._values, self._alphabets, freq)
            self._expected = self._probes.expected
            self._period = min(2 * self._period, _MAX_PERIOD)
        self._seen = self._hits = 0


class MaskStream:
    """The masking state of one output stream: feed it chunks as they are read, `flush()` at the end."""

    def __init__(self, masker: Masker):
        self._masker = masker
        # Held-back bytes and how many of their first bytes are already masked: one attribute, so that an
        # interrupt between two assignments cannot leave a state that would show masked bytes.
        self._state: tuple[bytes, int] = (b"", 0)

    def feed(self, chunk: bytes) -> bytes:
        """What may be shown now of the stream so far, masked; the rest is held until it is decided."""
        masker = self._masker
        if not masker._values:
            return chunk
        held, covered = self._state
        data = held + chunk if held else chunk
        out, covered, hold = masker._step(data, covered, final=False)
        self._state = (data[hold:], covered)
        return out

    def flush(self) -> bytes:
        """End of stream: everything still held, masked. The stream can then start afresh."""
        held, covered = self._state
        self._state = (b"", 0)
        if not held:
            return b""
        out, _, _ = self._masker._step(held, covered, final=True)
        return out


def masked(streams: Iterable[tuple[bytes | None, bytes | None]], masker: Masker | None) -> Iterator[tuple[int, bytes]]:
    """(stdout, stderr) chunk pairs as (1 or 2, masked bytes), each stream masked on its own (a value split across
    two chunks of one stream is still masked); what a stream holds back comes out at the end."""
    masks = [masker.stream(), masker.stream()] if masker is not None else [None, None]
    try:
        for pair in streams:
            for index, chunk in enumerate(pair):
                if not chunk:
                    continue
                if masks[index] is not None:
                    chunk = masks[index].feed(chunk)
                if chunk:
                    yield index + 1, chunk
    finally:
        close = getattr(streams, "close", None)
        if close is not None:
            close()  # the engine's response too, when the reader stops early
    for index, mask in enumerate(masks):
        if mask is not None:
            rest = mask.flush()
            if rest:
                yield index + 1, rest
