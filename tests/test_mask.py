"""Masking secret values in job output (launcher.mask): one-shot, streamed in any split, and held back minimally.

The reference below finds occurrences the obvious way (`bytes.find` from every position) and merges overlapping
ones; the masker must agree with it on every input and every way of cutting that input into reads.
"""

from __future__ import annotations

import itertools
import random

import pytest

from launcher.mask import Masker

PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+XQ3kP\n"
    b"Zy9fWm0XyJmRk2WYmYLrR0qV0p7hYw0VmJw9E8kV1Xq0b3E7bS3w==\n"
    b"-----END PRIVATE KEY-----\n"
)


def reference(data: bytes, values: list[bytes], replacement: bytes = b"***") -> bytes:
    """Every occurrence of every non-empty value, overlapping ones merged into one replacement."""
    spans = []
    for value in {v for v in values if v}:
        at = data.find(value)
        while at >= 0:
            spans.append((at, at + len(value)))
            at = data.find(value, at + 1)
    pieces, end = [], 0
    for start, stop in sorted(spans):
        if start < end:
            end = max(end, stop)
        else:
            pieces += [data[end:start], replacement]
            end = stop
    return b"".join(pieces) + data[end:]


def streamed(masker: Masker, chunks: list[bytes]) -> bytes:
    """What one stream shows for `chunks` read in turn, then the end of the stream."""
    stream = masker.stream()
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.flush()


def cut(data: bytes, points: tuple[int, ...]) -> list[bytes]:
    """`data` cut at `points` (sorted offsets; a repeated offset gives an empty read)."""
    bounds = (0, *points, len(data))
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_case(rng: random.Random, alphabet: bytes = b"ab\x1bx") -> tuple[list[bytes], bytes]:
    """Short values over a tiny alphabet, so that overlaps, nesting and partial matches are frequent."""
    values = [bytes(rng.choices(alphabet, k=rng.randint(0, 4))) for _ in range(rng.randint(1, 4))]
    return values, bytes(rng.choices(alphabet, k=rng.randint(0, 14)))


# One-shot semantics, written out by hand.


@pytest.mark.parametrize(
    ("values", "data", "expected"),
    [
        ([b"hunter2"], b"password=hunter2\n", b"password=***\n"),
        ([b"hunter2"], b"hunter2 hunter2", b"*** ***"),
        ([b"pass", b"password"], b"password pass", b"*** ***"),  # the longest match wins
        ([b"abcd", b"cdef"], b"xabcdefx", b"x***x"),  # overlapping occurrences: no byte of either shows
        ([b"aa"], b"aaa", b"***"),  # a value overlapping itself
        ([b"ab"], b"abab", b"******"),  # adjacent, not overlapping: two occurrences
        ([b"7"], b"a7b", b"a***b"),  # one-byte values are masked too
        ([b"42"], b"1421", b"1***1"),
        ([b"s3cr3t"], b"\x1b[31ms3cr3t\x1b[0m", b"\x1b[31m***\x1b[0m"),  # colour codes stay intact
        ([b"\x1b[31m"], b"\x1b[31mred\x1b[0m", b"***red\x1b[0m"),
        ([b"", b"x"], b"axb", b"a***b"),  # empty values are ignored
        ([PEM], b"key:\n" + PEM + b"done\n", b"key:\n***done\n"),
        ([PEM], b"key:\r\n" + PEM.replace(b"\n", b"\r\n"), b"key:\r\n***"),  # as a TTY prints it
    ],
)
def test_mask_replaces_every_occurrence(values: list[bytes], data: bytes, expected: bytes) -> None:
    assert Masker(values).mask(data) == expected
    assert streamed(Masker(values), [data]) == expected


def test_replacement_is_configurable() -> None:
    assert Masker([b"tok"], replacement=b"[masked]").mask(b"a tok b") == b"a [masked] b"


def test_mask_agrees_with_reference_on_random_inputs() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        values, data = random_case(rng)
        assert Masker(values).mask(data) == reference(data, values), (values, data)


# Streaming: any split of the input gives the one-shot result.


def test_every_split_into_two_and_three_reads_gives_the_same_output() -> None:
    rng = random.Random(2)
    for _ in range(150):
        values, data = random_case(rng)
        expected = reference(data, values)
        masker = Masker(values)
        for points in itertools.chain(
            itertools.combinations_with_replacement(range(len(data) + 1), 1),
            itertools.combinations_with_replacement(range(len(data) + 1), 2),
        ):
            assert streamed(masker, cut(data, points)) == expected, (values, data, points)


def test_random_reads_including_empty_and_single_bytes() -> None:
    rng = random.Random(3)
    for _ in range(500):
        values, data = random_case(rng, alphabet=b"abc\n")
        points = tuple(sorted(rng.choices(range(len(data) + 1), k=rng.randint(0, 8))))
        assert streamed(Masker(values), cut(data, points)) == reference(data, values), (values, data, points)


@pytest.mark.parametrize("step", [1, 2, 7, 64])
def test_multi_line_value_split_at_every_boundary(step: int) -> None:
    data = b"\x1b[32mINFO\x1b[0m loaded key\n" + PEM + b"\x1b[32mINFO\x1b[0m ready\n"
    expected = b"\x1b[32mINFO\x1b[0m loaded key\n***\x1b[32mINFO\x1b[0m ready\n"
    masker = Masker([PEM])
    for first in range(len(data) + 1):
        chunks = [data[:first]] + [data[i : i + step] for i in range(first, len(data), step)]
        assert streamed(masker, chunks) == expected, first


def test_value_across_large_reads() -> None:
    rng = random.Random(4)
    secret = b"Zq8xV3kPwL0yTn5R"
    filler = bytes(rng.choices(b"abcdefghij \n", k=200_000))
    data = filler[:65530] + secret + filler[65546:131060] + secret + filler[131076:]  # at 65530 and 131060
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    out = streamed(Masker([secret]), chunks)
    assert out == reference(data, [secret])
    assert secret not in out and out.count(b"***") == 2


def test_output_whose_byte_mix_changes_stays_masked() -> None:
    """Enough output, with a byte mix unlike the masker's first guess, for it to re-choose how it searches."""
    rng = random.Random(5)
    alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    values = [bytes(rng.choices(alnum, k=rng.randint(8, 40))) for _ in range(30)]
    lines = [bytes(rng.choices(alnum, k=60)) + b"\n" for _ in range(8000)]
    for i in range(0, len(lines), 97):
        lines[i] = lines[i][:20] + rng.choice(values) + lines[i][20:]
    data = b"".join(lines)
    masker = Masker(values)
    first_choice = masker._probes
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert streamed(masker, chunks) == reference(data, values)
    assert masker._probes is not first_choice  # the scenario under test did happen


# What is held back, and when it comes out.


def test_prompt_without_newline_is_shown_at_once() -> None:
    stream = Masker([b"hunter2", b"s3cr3t"]).stream()
    assert stream.feed(b"Password: ") == b"Password: "
    assert stream.feed(b"hunter2") == b"***"


def test_only_a_possible_start_of_a_value_is_held() -> None:
    stream = Masker([b"hunter2"]).stream()
    assert stream.feed(b"user: hun") == b"user: "
    assert stream.feed(b"gry\n") == b"hungry\n"
    assert stream.feed(b"hunt") == b""
    assert stream.feed(b"er2!") == b"***!"


def test_shorter_value_waits_for_a_longer_one() -> None:
    masker = Masker([b"ab", b"abcd"])
    stream = masker.stream()
    assert stream.feed(b"xab") == b"x"
    assert stream.feed(b"cd") == b"***"
    stream = masker.stream()
    assert stream.feed(b"xab") == b"x"
    assert stream.feed(b"z") == b"***z"


def test_overlap_continuing_in_the_next_read_is_one_occurrence() -> None:
    stream = Masker([b"abcd", b"cdef"]).stream()
    assert stream.feed(b"xabcd") == b"x***"
    assert stream.feed(b"ef") == b""
    assert stream.feed(b"y") == b"y"


def test_nothing_is_held_longer_than_needed() -> None:
    """After every read, exactly the longest suffix that could start a value is missing from the output."""
    rng = random.Random(6)
    for _ in range(400):
        values, data = random_case(rng, alphabet=b"abc")
        if any(value and value in data for value in values):
            continue  # only inputs without occurrences, so that the output is the input minus what is held
        stream = Masker(values).stream()
        shown = b""
        for end in range(1, len(data) + 1):
            shown += stream.feed(data[end - 1 : end])
            seen = data[:end]
            held = max(
                (n for n in range(1, len(seen) + 1) for v in values if len(v) > n and v.startswith(seen[-n:])),
                default=0,
            )
            assert shown == seen[: len(seen) - held], (values, seen)
        assert shown + stream.flush() == data


def test_flush_emits_what_is_held_and_resets() -> None:
    stream = Masker([b"secret"]).stream()
    assert stream.feed(b"top sec") == b"top "
    assert stream.flush() == b"sec"
    assert stream.flush() == b""
    assert stream.feed(b"ret") == b"ret"  # a new stream: "sec" went out with the flush


def test_flush_masks_a_value_completed_by_the_last_read() -> None:
    stream = Masker([b"ab", b"abcd"]).stream()
    assert stream.feed(b"ab") == b""
    assert stream.flush() == b"***"


# Streams and the no-values fast path.


def test_stdout_and_stderr_streams_are_independent() -> None:
    masker = Masker([b"hunter2"])
    stdout, stderr = masker.stream(), masker.stream()
    assert stdout.feed(b"hun") == b""
    assert stderr.feed(b"ter2\n") == b"ter2\n"  # not the rest of stdout's "hun"
    assert stderr.feed(b"hunter2\n") == b"***\n"
    assert stdout.feed(b"ter2\n") == b"***\n"


@pytest.mark.parametrize("values", [[], [b""], [b"", b""]])
def test_no_values_passes_output_through_unchanged(values: list[bytes]) -> None:
    masker = Masker(values)
    stream = masker.stream()
    chunk = b"anything at all \x1b[0m"
    assert stream.feed(chunk) is chunk
    assert stream.flush() == b""
    assert masker.mask(chunk) is chunk
