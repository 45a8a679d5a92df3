#!/usr/bin/python3
"""hello-api: answers GET / with what the image is made of, as JSON. Port 8080."""
import json
import platform
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def release(path):
    """KEY=VALUE lines the image's layers wrote, as a dict ({} when absent)."""
    try:
        with open(path, encoding="utf-8") as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in ("/", "/healthz"):
            self.send_error(404)
            return
        body = json.dumps(
            {
                "service": "hello-api",
                "python": platform.python_version(),
                "layers": {
                    name: release(f"/etc/{name}-release")
                    for name in ("vendor", "global", "product", "service")
                },
            },
            sort_keys=True,
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # One line per request in the journal, without the client's address.
        print(fmt % args, flush=True)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
