"""ClickHouse's HTTP interface over chdb, a current ClickHouse engine in-process.

Debian's clickhouse-server (18.16) predates what the export path uses (`INSERT INTO
FUNCTION s3`, `PARTITION BY`, named collections), so the tests of that path send retl's
requests here instead, to the same engine code a ClickHouse server of today runs. Serves
what the ClickHouse source sends (ClickHouse's docs: "HTTP Interface"):

- `GET /ping` -> `Ok.`
- `POST /?query_id=..&database=..&<setting>=..` with the statement as the body; settings
  apply to that statement; `enable_http_compression=1` with `Accept-Encoding: gzip` gzips
  the answer;
- `X-ClickHouse-User` / `X-ClickHouse-Key` checked against `--user NAME:PASSWORD` (the
  `default` user needs none);
- errors as the server writes them: status 500 (404 for an unknown table or database, 403
  for a wrong password), the `Code: N. DB::Exception: ...` text, and the
  `X-ClickHouse-Exception-Code` header.

Usage: chdb_http.py --port PORT [--user NAME:PASSWORD] [--setup SQL_FILE]
"""

import argparse
import gzip
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from chdb import session

OWN_PARAMS = {"query", "query_id", "database", "enable_http_compression", "default_format"}
CODE = re.compile(r"Code: (\d+)")
NOT_FOUND = {60, 81}  # UNKNOWN_TABLE, UNKNOWN_DATABASE
AUTH_FAILED = 516


class Engine:
    """One chdb session for every request, one statement at a time."""

    def __init__(self):
        self.session = session.Session()
        self.lock = threading.Lock()

    def run(self, sql, database, settings):
        with self.lock:
            self.session.query(f"USE `{database}`")
            for name, value in settings.items():
                self.session.query(f"SET {name} = '{value}'")
            try:
                return self.session.query(sql, "TabSeparated").bytes()
            finally:
                for name in settings:
                    self.session.query(f"SET {name} = DEFAULT")


def handler(engine, users):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def answer(self, status, body, headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def fail(self, code, message, status=500):
            text = f"Code: {code}. DB::Exception: {message}\n".encode()
            self.answer(status, text, [("X-ClickHouse-Exception-Code", str(code))])

        def do_GET(self):
            if urlparse(self.path).path == "/ping":
                self.answer(200, b"Ok.\n")
            else:
                self.fail(0, "only /ping is served by GET here", 400)

        def do_POST(self):
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            sql = params.get("query", "") + body
            user = self.headers.get("X-ClickHouse-User", "default")
            key = self.headers.get("X-ClickHouse-Key", "")
            if users.get(user, None) != key:
                return self.fail(
                    AUTH_FAILED,
                    f"{user}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
                    403,
                )
            settings = {k: v for k, v in params.items() if k not in OWN_PARAMS}
            try:
                out = engine.run(sql, params.get("database", "default"), settings)
            except Exception as e:  # chdb raises its server's exception text
                message = str(e)
                m = CODE.search(message)
                code = int(m.group(1)) if m else 1002
                message = re.sub(r"^Code: \d+\. DB::Exception: ", "", message)
                return self.fail(code, message, 404 if code in NOT_FOUND else 500)
            headers = [("Content-Type", "text/tab-separated-values; charset=UTF-8")]
            wants_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
            if params.get("enable_http_compression") == "1" and wants_gzip:
                out = gzip.compress(out, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            self.answer(200, out, headers)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", action="append", default=[])
    parser.add_argument("--setup", help="a file of statements (one per line) run at start")
    args = parser.parse_args()
    users = {"default": ""}
    for spec in args.user:
        name, _, password = spec.partition(":")
        users[name] = password
    engine = Engine()
    if args.setup:
        with open(args.setup) as f:
            for line in f:
                if line.strip():
                    engine.session.query(line)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(engine, users))
    server.serve_forever()


if __name__ == "__main__":
    main()
