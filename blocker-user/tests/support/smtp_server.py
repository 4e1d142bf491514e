"""A recording SMTP server for blocker's notification tests (aiosmtpd).

Writes each received message as JSON into --out and prints "READY <port>"
once listening on 127.0.0.1.
"""
import argparse
import asyncio
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--out", required=True)
p.add_argument("--mode", choices=["plain", "starttls", "smtps"], default="plain")
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--user")
p.add_argument("--password")
a = p.parse_args()


class Handler:
    def __init__(self):
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "authenticated": bool(session.authenticated),
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
        }
        path = os.path.join(a.out, "%d-%06d.json" % (os.getpid(), self.n))
        with open(path + ".tmp", "w") as f:
            json.dump(rec, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == a.user
        and auth_data.password.decode() == a.password
    )
    return AuthResult(success=ok, handled=False)


async def main():
    ctx = None
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    kw = {}
    if a.user:
        kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=(a.mode == "starttls"))
    if a.mode == "starttls":
        kw.update(tls_context=ctx, require_starttls=True)
    handler = Handler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", **kw),
        host="127.0.0.1",
        port=a.port,
        ssl=ctx if a.mode == "smtps" else None,
        reuse_address=True,
    )
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
