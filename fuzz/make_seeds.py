#!/usr/bin/env python3
"""Regenerates fuzz/corpus/ (the committed seeds): from each real fixture under
crates/trendflow-ops/tests/data/real/, its shortest line and its line closest to 2 KB (lines
over 8 KB skipped), one line per seed file, plus hand-written malformed lines.

parse_lines seeds start with the options byte (see fuzz_targets/parse_lines.rs): 0 (Auto
format, defaults) for real lines, other values for a few malformed ones.
"""
import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
REAL = ROOT / "crates/trendflow-ops/tests/data/real"
OUT = ROOT / "fuzz/corpus"

FORMAT_BYTE = {"tweets-v1": 1, "tweets-v2": 2, "mastodon": 3, "bluesky": 4}

MALFORMED = [
    b"",
    b"   \t ",
    b"not json",
    b"[1,2]",
    b"null",
    b'{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"trunc',
    b'{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"bad \xff utf8"}',
    b'{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"lone \\ud83d surrogate"}',
    b'{"delete":{"status":{"id":1}}}',
    b'{"limit":{"track":5}}',
    b'{"created_at":"nope","text":"#kept"}',
    b'{"text":"#a {x}","created_at":null} trailing',
    b'{"text":"#b"}{"text":"#c"}',
    b"{'text':'#e','created_at':'Thu Apr 15 08:00:05 +0000 2021'}",
    b'{"text":"#f\xc0\xaf"}',
    b'{"text":"Tr\\u0\\ud83d0e8s"}',
    b'{"text":["#a",{"b":1}]}',
    b'{"text":"x","timestamp_ms":"1618473605000"}',
    b'{"text":"x","created_at":"thursday april 15 8:0:5 +0000 2021 extra"}',
    b'{"data":[],"errors":[{"title":"x"}]}',
    b'{"data":[{"id":"1","text":"#a","created_at":"2021-04-15T08:00:05.123+02:00"}],"includes":{"users":[]}}',
    b'{"id":"1","created_at":"2021-04-15T08:00:05Z","content":"<p>#a&amp;<br>b</p>","account":{"acct":"b"}}',
    b'{"did":"did:plc:x","time_us":1618473605000000,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","record":{"text":"#a","createdAt":"2021-04-15T08:00:05Z"}}}',
    b'{"text":"a"}\r\n\r\n{"text":"b","created_at":"Thu Apr 15 08:00:05 +0000 2021"}\n',
]


def write(target: str, data: bytes) -> None:
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    for f in sorted(REAL.glob("**/*.ndjson")):
        lines = [l for l in f.read_bytes().split(b"\n") if l.strip() and len(l) <= 8192]
        if not lines:
            continue
        picks = {min(lines, key=len), min(lines, key=lambda l: abs(len(l) - 2048))}
        for line in picks:
            write("parse_lines", bytes([0]) + line)
            write("spark_repair", line)
        # Once per fixture with its format named, text as sent, reposts as originals.
        fmt = FORMAT_BYTE[f.relative_to(REAL).parts[0]]
        write("parse_lines", bytes([fmt | 8 | 16]) + min(lines, key=len))
    for i, line in enumerate(MALFORMED):
        write("parse_lines", bytes([i % 96]) + line)
        write("spark_repair", line)
    # Small max_line_bytes (top bit of the options byte, then the limit).
    write("parse_lines", bytes([128, 20]) + b'{"text":"a"}\n{"text":"a longer line"}')


if __name__ == "__main__":
    main()
