#!/usr/bin/env python3
"""A real SMTP server for skypunch's notification tests (aiosmtpd).

Listens on HOST:PORT (127.0.0.1 and any free port by default), optionally offers and requires STARTTLS with a
certificate of a private CA it makes with the openssl command (ca.pem in --dir), optionally
requires AUTH PLAIN or LOGIN with one user and password. Every message it accepts becomes two files in --dir:
NNNN.eml (the raw message) and NNNN.json (envelope, headers and the decoded text and html
parts). Once listening it writes its port to --ready-file. Stops on SIGTERM or SIGINT.

    smtp_server.py --dir D --ready-file F [--host H] [--port P] [--starttls] [--user U --password P]
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import subprocess
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def private_ca(folder):
    """A certificate for localhost and 127.0.0.1 signed by a CA of its own: ca.pem is what a
    notifier's ca_file= names; cert.pem and key.pem are the server's."""
    path = lambda name: os.path.join(folder, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", path("ca-key.pem"),
                    "-out", path("ca.pem"), "-days", "2",
                    "-subj", "/CN=skypunch test SMTP CA"], **quiet)
    subprocess.run(["openssl", "req", *ec, "-keyout", path("key.pem"),
                    "-out", path("leaf.csr"), "-subj", "/CN=localhost"], **quiet)
    with open(path("leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    subprocess.run(["openssl", "x509", "-req", "-in", path("leaf.csr"), "-CA", path("ca.pem"),
                    "-CAkey", path("ca-key.pem"), "-CAcreateserial", "-out", path("cert.pem"),
                    "-days", "2", "-extfile", path("leaf.ext")], **quiet)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(path("cert.pem"), path("key.pem"))
    return ctx


class Saver:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.folder, "%04d-%d" % (self.count, os.getpid()))
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype in ("text/plain", "text/html") and ctype not in parts:
                parts[ctype] = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {k: str(v) for k, v in msg.items()},
            "subject": str(msg.get("Subject", "")),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""),
            "raw": raw.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    tls_context = private_ca(args.dir) if args.starttls else None
    authenticator = None
    if args.user is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == args.user
                  and auth_data.password.decode() == args.password)
            # handled=False: aiosmtpd itself answers 535 on failure.
            return AuthResult(success=ok, handled=False)

    handler = Saver(args.dir)

    def factory():
        return SMTP(handler, hostname="localhost", tls_context=tls_context,
                    require_starttls=tls_context is not None,
                    authenticator=authenticator, auth_required=authenticator is not None,
                    auth_require_tls=tls_context is not None)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(factory, args.host, args.port))
    port = server.sockets[0].getsockname()[1]
    with open(args.ready_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(args.ready_file + ".tmp", args.ready_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    loop.run_forever()
    server.close()
    loop.run_until_complete(server.wait_closed())
    return 0


if __name__ == "__main__":
    sys.exit(main())
