"""A stand-in identity provider for the federation tests: a separate process serving an OpenID
Connect discovery document and a JWK Set over HTTP on 127.0.0.1, with misbehaviours on demand.

The test writes files into the state directory given as the only argument:
  jwks.json      the JWK Set to serve
  mode           ok (default) | error (HTTP 500) | hang (never answers in time)
                 | huge (50 MB with a Content-Length) | huge-chunked (50 MB, no length)
  cache_control  the Cache-Control header of the JWK Set (optional)
GET /stats answers how many times each document was fetched. The port is printed on stdout.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = sys.argv[1]
COUNTS = {"discovery": 0, "jwks": 0}
LOCK = threading.Lock()


def read(name, default=""):
    try:
        with open(os.path.join(STATE, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, value, cache_control=None):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if cache_control:
            self.send_header("Cache-Control", cache_control)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        base = "http://127.0.0.1:%d" % self.server.server_address[1]
        if self.path == "/stats":
            with LOCK:
                return self.send_json(dict(COUNTS))
        if self.path == "/.well-known/openid-configuration":
            with LOCK:
                COUNTS["discovery"] += 1
            return self.send_json({"issuer": base, "jwks_uri": base + "/jwks"})
        if self.path != "/jwks":
            self.send_error(404)
            return
        with LOCK:
            COUNTS["jwks"] += 1
        mode = read("mode", "ok")
        if mode == "error":
            self.send_error(500)
        elif mode == "hang":
            time.sleep(30)
        elif mode in ("huge", "huge-chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if mode == "huge":
                self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            chunk = b" " * 65536
            try:
                for _ in range(800):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_json(json.loads(read("jwks.json", '{"keys": []}')), read("cache_control") or None)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
