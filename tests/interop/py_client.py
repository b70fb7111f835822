"""Python's websockets as a client of a wsx server, one connection per case, one after
another. stdin: one case a line, "ID<TAB>URL<TAB>SPEC" (SPEC as in messages.py: the offer),
then END. For each case it sends every message of messages.py (a sender task, while echoes are
read), checks each echo byte for byte and in order, closes with 1000 and prints one line:
  RESULT<TAB>ID<TAB>ok<TAB>EXTENSIONS<TAB>PAYLOAD_BYTES    or    RESULT<TAB>ID<TAB>fail<TAB>WHY
where EXTENSIONS is the Sec-WebSocket-Extensions header of the server's 101 ("" when none).
Offer: snct, cnct (cnct=0: not offered), smwb=N, cmwb (bare), cmwb=N, cmwb=0 (not offered).
With --ca FILE a wss:// URL is verified against that CA alone (an ssl.SSLContext)."""

import asyncio
import ssl

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from messages import clean, messages, parse_spec, read_cases, tls_args, total_bytes

MESSAGES = messages()
TOTAL = total_bytes(MESSAGES)
TLS = tls_args()
SSL = ssl.create_default_context(cafile=TLS["ca"]) if "ca" in TLS else None


def extensions(spec):
    p = parse_spec(spec)
    if p is None:
        return None
    cmwb = p.get("cmwb", True)
    return [
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=bool(p.get("snct")),
            client_no_context_takeover=p.get("cnct") is True,
            server_max_window_bits=p.get("smwb"),
            client_max_window_bits=None if cmwb == 0 else cmwb,
        )
    ]


async def run_case(url, spec):
    async with connect(
        url,
        compression=None,
        extensions=extensions(spec),
        max_size=None,
        ping_interval=None,
        open_timeout=10,
        close_timeout=10,
        ssl=SSL if url.startswith("wss://") else None,
    ) as ws:
        answer = ", ".join(ws.response.headers.get_all("Sec-WebSocket-Extensions"))

        async def send_all():
            for m in MESSAGES:
                await ws.send(m)

        sender = asyncio.create_task(send_all())
        for n, want in enumerate(MESSAGES, 1):
            got = await ws.recv()
            if type(got) is not type(want):
                raise AssertionError(f"message {n}: wrong kind")
            if got != want:
                raise AssertionError(f"message {n}: content differs ({len(got)} bytes)")
        await sender
        await ws.close(1000, "done")
        if ws.close_code != 1000:
            raise AssertionError(f"closed with {ws.close_code}")
    return answer


async def main():
    for case_id, url, spec in read_cases():
        try:
            answer = await asyncio.wait_for(run_case(url, spec), 60)
            print("\t".join(["RESULT", case_id, "ok", clean(answer), str(TOTAL)]), flush=True)
        except Exception as e:  # every failure is reported, the next case still runs
            why = clean(f"{type(e).__name__}: {e}")
            print("\t".join(["RESULT", case_id, "fail", why]), flush=True)


asyncio.run(main())
