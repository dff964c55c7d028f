#!/usr/bin/python3
"""The browser suite's web server: GET serves this folder's files; POST /log?ev=NAME&b=BROWSER
appends '<guest uptime> NAME <body>' to results-BROWSER.txt, and ev=done creates done-BROWSER.
Listens on [::]:PORT (dual stack), so http://localhost:PORT works over IPv4 and IPv6.

Usage: server.py DIR PORT"""
import http.server
import os
import socket
import sys
import urllib.parse


def uptime():
    return open("/proc/uptime").read().split()[0]


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ev = q.get("ev", ["?"])[0]
        browser = "".join(c for c in q.get("b", ["unknown"])[0] if c.isalnum())
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode(errors="replace")
        line = "%s %s %s" % (uptime(), ev, body)
        with open(os.path.join(OUT, "results-%s.txt" % browser), "a") as f:
            f.write(line + "\n")
        print("[server] %s %s" % (browser, line[:160]), flush=True)
        if ev == "done":
            open(os.path.join(OUT, "done-" + browser), "w").close()
        self.send_response(204)
        self.end_headers()

    def log_message(self, fmt, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


OUT = os.getcwd()
os.chdir(sys.argv[1])
Server(("::", int(sys.argv[2])), Handler).serve_forever()
