#!/usr/bin/python3
"""Listens on a unix datagram socket like systemd's NOTIFY_SOCKET and appends every message
(one per line, newlines inside a message become '|') to a file, so tests can check the
sd_notify protocol: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1."""
import os, socket, sys

path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
with open(out, "a", buffering=1) as f:
    while True:
        msg = sock.recv(4096).decode("utf-8", "replace")
        f.write(msg.replace("\n", "|") + "\n")
