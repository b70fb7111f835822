"""The messages every interop case sends, in order, on one connection; the same list as
messages.js and `messages()` in tests/support/interop.rs (same sizes and bytes)."""

import sys


def xorshift(seed, n):
    out = bytearray(n)
    x = seed & 0xFFFFFFFF
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    return bytes(out)


def json(n):
    parts, size, i = [], 0, 0
    while size < n:
        line = '{"seq":%d,"sym":"BTC-USD","side":"buy","qty":%d}\n' % (i, i % 97)
        parts.append(line)
        size += len(line)
        i += 1
    return "".join(parts)[:n]


def messages():
    big = bytes((((i % 61) * 7) + (i >> 12)) & 0xFF for i in range((1 << 20) + 4096))
    noise = xorshift(12345, 65535)
    pattern = b"0123456789abcdef"
    mixed = bytes(
        noise[i] if (i >> 12) & 1 == 0 else pattern[i % 16] for i in range(65535)
    )
    small = bytes(i % 5 for i in range(125))
    letters = "".join(chr(97 + i % 26) for i in range(126))
    return [
        "hello, wsx",
        json(65536),
        big,
        "héllo wörld, 日本語のテキスト, emoji 🎉🚀 " * 2000,
        xorshift(0x9E3779B9, 256 * 1024),
        mixed,
        json(65536),
        small,
        letters,
        # Last, so that every other message is checked first.
        b"",
    ]


def total_bytes(msgs):
    return sum(len(m.encode()) if isinstance(m, str) else len(m) for m in msgs)


def parse_spec(spec):
    """"off" -> None; "on" -> {} (the defaults); otherwise tokens joined by commas: snct, cnct, cnct=0, smwb=N, cmwb
    (bare), cmwb=N, cmwb=0 (not offered); a bare token is True."""
    if spec == "off":
        return None
    if spec == "on":
        return {}
    out = {}
    for token in filter(None, spec.split(",")):
        key, _, value = token.partition("=")
        out[key] = True if value == "" else int(value)
    return out


def read_cases():
    """Lines of stdin up to END (or EOF), split at tabs."""
    cases = []
    for line in sys.stdin:
        line = line.strip()
        if line == "END":
            break
        if line:
            cases.append(line.split("\t"))
    return cases


def tls_args():
    """The TLS files named on the command line: --ca FILE (what a client trusts), --cert FILE
    and --key FILE (what a server presents), as a dict of paths."""
    argv = sys.argv[1:]
    out = {}
    for name, value in zip(argv[::2], argv[1::2]):
        key = name.removeprefix("--")
        if key not in ("ca", "cert", "key"):
            raise SystemExit(f"unknown argument {name}")
        out[key] = value
    return out


def clean(text):
    return text.replace("\t", " ").replace("\n", " ")
