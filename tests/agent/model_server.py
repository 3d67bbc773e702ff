#!/usr/bin/env python3
"""A model server for `ember pull` tests, on loopback only: serves the files of a directory with
HTTP Range (206 + Content-Range, If-Range, strong ETags) and the ways a download goes wrong.

  /files/NAME            the file, Range-capable; /files/NAME.sha256 its checksum (when
                         the directory holds NAME.sha256)
  /cut/NAME              a request without Range gets the full Content-Length but the
                         connection is closed after half the body; Range requests are served
  /corrupt/NAME          the file's size, every byte after the header flipped
  /hf/OWNER/REPO/resolve/main/NAME
                         302 to /files/NAME with X-Linked-Etag (its SHA-256) and X-Linked-Size,
                         as Hugging Face answers
  /hfbad/OWNER/REPO/resolve/main/NAME
                         the same with a wrong X-Linked-Etag
  anything else          404

Every request line and its Range header is appended to LOG. Usage: model_server.py DIR PORTFILE LOG
(the port the kernel picked is written to PORTFILE)."""
import hashlib
import http.server
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def note(self):
        with open(self.server.log, "a") as f:
            f.write("%s %s range=%s if-range=%s\n" % (self.command, self.path,
                                                     self.headers.get("Range"),
                                                     self.headers.get("If-Range")))

    def not_found(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def local(self, name):
        path = os.path.join(self.server.dir, os.path.basename(name))
        return path if os.path.isfile(path) else None

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def handle_any(self, head):
        self.note()
        parts = self.path.split("/")
        if len(parts) >= 3 and parts[1] in ("hf", "hfbad") and "resolve" in parts:
            name = parts[-1]
            path = self.local(name)
            if not path:
                return self.not_found()
            digest = sha256(path) if parts[1] == "hf" else "0" * 64
            self.send_response(302)
            self.send_header("Location", "/files/" + name)
            self.send_header("X-Linked-Etag", '"%s"' % digest)
            self.send_header("X-Linked-Size", str(os.path.getsize(path)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if len(parts) != 3 or parts[1] not in ("files", "cut", "corrupt"):
            return self.not_found()
        mode, name = parts[1], parts[2]
        path = self.local(name)
        if not path:
            return self.not_found()
        with open(path, "rb") as f:
            data = f.read()
        if mode == "corrupt":
            data = data[:64] + bytes(b ^ 0xFF for b in data[64:])
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
        start, status = 0, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and (if_range is None or if_range == etag):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.end_headers()
        if head:
            return
        if mode == "cut" and status == 200:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


def main():
    directory, portfile, log = sys.argv[1:4]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.dir = directory
    server.log = log
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    server.serve_forever()


if __name__ == "__main__":
    main()
