#!/usr/bin/env python3
"""A real OAuth2 authorization server for skypunch's OAUTH2 tests: Authlib's
AuthorizationServer with the client credentials grant (RFC 6749 section 4.4), on Flask.

Listens on 127.0.0.1:PORT (0: any free port) and writes the port to --ready-file once it
listens. Each --client ID:METHOD:SECRET is a client allowed to authenticate with METHOD
(basic: client_secret_basic, post: client_secret_post) only. Tokens are Authlib's random
bearer tokens, valid --expires-in seconds.

    POST /token          the token endpoint (Authlib's, with its error answers)
    GET  /resource       a protected resource: 200 {"status": "ok", "client": ID} with a
                         valid, unrevoked token, 401 with WWW-Authenticate otherwise
    POST /revoke-all     revokes every token issued so far: a cached token now gets 401
    POST /delay?ms=N     token answers wait N ms from now on (concurrent fetches, timeouts)
    GET  /stats          what the tests count: per client the token requests and the tokens
                         issued, the method it authenticated with, and the last form sent
                         (client_secret shown as ***)

Exits when its standard input closes (the test that started it is gone), on SIGTERM or
SIGINT.

    oauth2_server.py --ready-file F [--port P] [--expires-in S] [--scopes "read write"]
                     --client ID:METHOD:SECRET [--client ...]
"""

import argparse
import base64
import os
import sys
import threading
import time
import urllib.parse

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask, jsonify, request
from werkzeug.serving import make_server


class Client(ClientMixin):
    def __init__(self, client_id, secret, method):
        self.client_id = client_id
        self.secret = secret
        self.method = {"basic": "client_secret_basic", "post": "client_secret_post"}[method]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return client_secret == self.secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.method

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


class Token:
    def __init__(self, value, client_id, scope, expires_in):
        self.value = value
        self.client_id = client_id
        self.scope = scope
        self.expires_at = time.time() + expires_in
        self.revoked = False

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return time.time() >= self.expires_at

    def is_revoked(self):
        return self.revoked


class ClientCredentials(grants.ClientCredentialsGrant):
    # Authlib's grant takes client_secret_basic only unless told otherwise.
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def build_app(clients, expires_in, scopes):
    app = Flask(__name__)
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": expires_in}
    if scopes:
        app.config["OAUTH2_SCOPES_SUPPORTED"] = scopes.split()
    lock = threading.Lock()
    tokens = {}
    stats = {cid: {"token_requests": 0, "tokens_issued": 0, "auth": None, "last_form": {}}
             for cid in clients}
    state = {"delay_ms": 0}

    def save_token(token, req):
        with lock:
            cid = req.client.get_client_id()
            tokens[token["access_token"]] = Token(
                token["access_token"], cid, token.get("scope", ""), token["expires_in"])
            stats[cid]["tokens_issued"] += 1

    server = AuthorizationServer(app, query_client=clients.get, save_token=save_token)
    server.register_grant(ClientCredentials)

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string):
            with lock:
                return tokens.get(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    def requesting_client():
        """The client a token request names, and how it authenticated."""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
                return urllib.parse.unquote_plus(user), "basic"
            except (ValueError, UnicodeDecodeError):
                return None, "basic"
        if "client_id" in request.form:
            return request.form["client_id"], "post"
        return None, None

    @app.post("/token")
    def token():
        delay = state["delay_ms"]
        if delay:
            time.sleep(delay / 1000)
        cid, method = requesting_client()
        with lock:
            if cid in stats:
                s = stats[cid]
                s["token_requests"] += 1
                s["auth"] = method
                s["last_form"] = {k: ("***" if k == "client_secret" else v)
                                  for k, v in request.form.items()}
        return server.create_token_response()

    @app.get("/resource")
    @protect()
    def resource():
        from authlib.integrations.flask_oauth2 import current_token
        return jsonify(status="ok", client=current_token.client_id)

    @app.post("/revoke-all")
    def revoke_all():
        with lock:
            for t in tokens.values():
                t.revoked = True
            return jsonify(revoked=len(tokens))

    @app.post("/delay")
    def delay():
        state["delay_ms"] = int(request.args.get("ms", "0"))
        return jsonify(delay_ms=state["delay_ms"])

    @app.get("/stats")
    def get_stats():
        with lock:
            return jsonify(stats)

    return app


def exit_when_stdin_closes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--expires-in", type=int, default=3600)
    parser.add_argument("--scopes", default="")
    parser.add_argument("--client", action="append", default=[])
    args = parser.parse_args()
    clients = {}
    for spec in args.client:
        # The secret last: it may hold a `:`.
        cid, method, secret = spec.split(":", 2)
        clients[cid] = Client(cid, secret, method)
    app = build_app(clients, args.expires_in, args.scopes)
    httpd = make_server("127.0.0.1", args.port, app, threaded=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(httpd.server_port))
    os.replace(tmp, args.ready_file)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
