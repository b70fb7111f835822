"""Python's websockets as echo servers for the wsx clients: one server on its own port per
case. stdin: one case a line, "ID<TAB>SPEC" (SPEC as in messages.py: the server's options),
then END. Prints "PORT<TAB>ID<TAB>port" for each, then "READY", and exits when stdin closes
(or after 5 minutes at most).
On each connection the server first sends the text "HELLO\n<offer>\n<answer>" (the
Sec-WebSocket-Extensions headers of the request and of its 101, "" when absent), then echoes
every message. Options: snct, cnct, smwb=N, cmwb=N.
With --cert FILE --key FILE every server speaks TLS with that certificate (wss://)."""

import asyncio
import os
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from messages import parse_spec, read_cases, tls_args

TLS = tls_args()
SSL = None
if "cert" in TLS:
    SSL = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    SSL.load_cert_chain(TLS["cert"], TLS["key"])


def extensions(spec):
    p = parse_spec(spec)
    if p is None:
        return None
    return [
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=bool(p.get("snct")),
            client_no_context_takeover=bool(p.get("cnct")),
            server_max_window_bits=p.get("smwb"),
            client_max_window_bits=p.get("cmwb"),
        )
    ]


async def echo(ws):
    offer = ", ".join(ws.request.headers.get_all("Sec-WebSocket-Extensions"))
    answer = ", ".join(ws.response.headers.get_all("Sec-WebSocket-Extensions"))
    await ws.send(f"HELLO\n{offer}\n{answer}")
    async for message in ws:
        await ws.send(message)


async def main():
    servers = []
    for case_id, spec in read_cases():
        server = await serve(
            echo,
            "127.0.0.1",
            0,
            compression=None,
            extensions=extensions(spec),
            max_size=None,
            ping_interval=None,
            ssl=SSL,
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        print(f"PORT\t{case_id}\t{port}", flush=True)
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait_for(stdin_closed, 300)
    finally:
        # The reader thread may still block on stdin: leave without joining it.
        sys.stdout.flush()
        os._exit(0)


asyncio.run(main())
