"""Throughput of `launcher.mask` on log-like output: `python3 bench/bench_mask.py [--quick] [--compare]`.

The workload of the "Fast" issue: 100 secrets of 8-64 random alphanumeric bytes, coloured log lines (ISO
timestamps, levels in ANSI colours, request ids in hex, key=value pairs, JSON) with a few occurrences of the
secrets, fed to one `MaskStream` in 64 KiB chunks. Prints one line: MB (10**6 bytes) masked per second of
this process's CPU time, so that other work on the machine skews it less. `--quick` is a smoke run for CI (tiny,
and checks that the secrets were masked); `--compare` also times the scan alone of the strategies the masker did
not choose (see the docstring of `launcher.mask`). Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import time
from collections.abc import Callable

from launcher.mask import Masker

_ALNUM = (string.ascii_letters + string.digits).encode()
_VOCABULARY = (
    "request completed started connection accepted from worker cache miss hit user session token refreshed "
    "database query took retrying upstream timeout after payload received sent bytes handler listening on port "
    "shutting down gracefully scheduled job finished with status ok failed to open file permission denied "
    "reading config loaded plugins the a of to in for"
)
_WORDS = _VOCABULARY.split()
_LEVELS = (b"\x1b[32mINFO\x1b[0m", b"\x1b[33mWARN\x1b[0m", b"\x1b[31mERROR\x1b[0m", b"\x1b[36mDEBUG\x1b[0m")
_OCCURRENCES_PER_MB = 8


def make_secrets(n: int, rng: random.Random) -> list[bytes]:
    """`n` random alphanumeric values of 8 to 64 bytes."""
    return [bytes(rng.choices(_ALNUM, k=rng.randint(8, 64))) for _ in range(n)]


def _log_line(rng: random.Random) -> bytes:
    date = f"2024-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
    clock = f"{rng.randrange(24):02}:{rng.randrange(60):02}:{rng.randrange(60):02}.{rng.randrange(1000):03}"
    message = " ".join(rng.choices(_WORDS, k=rng.randint(3, 12))).capitalize()
    kind = rng.random()
    if kind < 0.3:
        user, status, took = rng.randint(1, 99999), rng.choice((200, 201, 204, 404, 500)), rng.randint(1, 2000)
        extra = f"method=GET path=/api/v1/users/{user} status={status} duration={took}ms"
    elif kind < 0.5:
        extra = f"request_id={rng.getrandbits(128):032x} trace={rng.getrandbits(64):016x}"
    elif kind < 0.6:
        extra = f'{{"event": "{rng.choice(_WORDS)}", "count": {rng.randint(0, 1000)}, "ok": true}}'
    else:
        extra = ""
    level = rng.choice(_LEVELS).decode()
    return f"{date}T{clock}Z {level} [worker-{rng.randint(1, 8)}] {message} {extra}\n".encode()


def make_output(size: int, secrets: list[bytes], rng: random.Random) -> bytes:
    """About `size` bytes of log lines, a few of which end with `password=<one of the secrets>`."""
    lines: list[bytes] = []
    total = 0
    while total < size:
        lines.append(_log_line(rng))
        total += len(lines[-1])
    for _ in range(max(1, _OCCURRENCES_PER_MB * size // 10**6)):
        i = rng.randrange(len(lines))
        lines[i] = lines[i][:-1] + b" password=" + rng.choice(secrets) + b"\n"
    return b"".join(lines)


def _throughput(scan: Callable[[bytes], object], data: bytes, chunk: int) -> float:
    """MB per CPU second of `scan` called on each `chunk`-sized piece of `data` in turn."""
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    started = time.process_time()
    for piece in pieces:
        scan(piece)
    return len(data) / (time.process_time() - started) / 1e6


def measure(total_mb: int = 64, n_secrets: int = 100, chunk: int = 65536, seed: int = 0) -> float:
    """MB/s through one MaskStream over `total_mb` MB of log-like output fed in `chunk`-byte reads."""
    rng = random.Random(seed)
    secrets = make_secrets(n_secrets, rng)
    data = make_output(total_mb * 10**6, secrets, rng)
    stream = Masker(secrets).stream()
    out: list[bytes] = []
    speed = _throughput(lambda piece: out.append(stream.feed(piece)), data, chunk)
    masked = b"".join(out) + stream.flush()
    if any(secret in masked for secret in secrets) or masked.count(b"password=***") == 0:
        raise AssertionError("the benchmark's secrets were not masked")
    return speed


def compare(total_mb: int = 8, n_secrets: int = 100, chunk: int = 65536, seed: int = 0) -> dict[str, float]:
    """Scan-only MB/s of the strategies not chosen, on the same workload (lower bounds on their real cost)."""
    rng = random.Random(seed)
    secrets = make_secrets(n_secrets, rng)
    data = make_output(total_mb * 10**6, secrets, rng)
    alternation = re.compile(b"|".join(map(re.escape, sorted(secrets, key=len, reverse=True))))
    trie = re.compile(_trie_pattern(secrets))

    def per_value_find(piece: bytes) -> None:
        for secret in secrets:
            piece.find(secret)

    return {
        "regex alternation, longest first": _throughput(alternation.findall, data[: 10**6], chunk),
        "trie-shaped regex": _throughput(trie.findall, data[: 10**6], chunk),
        "one bytes.find per value": _throughput(per_value_find, data, chunk),
    }


def _trie_pattern(words: list[bytes]) -> bytes:
    """A regex matching any of `words`, shaped as their trie (`ab|ac` as `a(?:b|c)`)."""
    root: dict = {}
    for word in words:
        node = root
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = {}

    def pattern(node: dict) -> bytes:
        branches = [re.escape(bytes([byte])) + pattern(child) for byte, child in node.items() if byte is not None]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if None in node else body

    return pattern(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument("--compare", action="store_true", help="also time the strategies not chosen")
    args = parser.parse_args()
    total_mb = 2 if args.quick else 64
    print(f"MaskStream, 100 secrets, {total_mb} MB of log lines in 64 KiB chunks: {measure(total_mb):.0f} MB/s")
    if args.compare:
        for name, speed in compare(1 if args.quick else 8).items():
            print(f"  scan only, {name}: {speed:.0f} MB/s")


if __name__ == "__main__":
    main()
