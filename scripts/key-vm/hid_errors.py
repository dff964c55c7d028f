#!/usr/bin/python3
"""CTAPHID through the real kernel path (hidraw → uhid → the key): every transport error, a
7609-byte message, interleaved channels with keepalives, CANCEL and INIT in the middle of a
ceremony, LOCK, WINK, MSG, and the phone vanishing mid-ceremony. Prints PASS/FAIL per check.

The phone driver of guest.sh reads ./phone.mode (scan, ignore or prompt) and writes the pid of
the phone-sim it runs to ./phone.pid; the key's log is ./key.log.

Usage: hid_errors.py"""
import glob
import os
import select
import signal
import struct
import sys
import time

from fido2 import cbor

BROADCAST = 0xFFFFFFFF
INIT, PING, MSG, LOCK, WINK, CBOR, CANCEL, KEEPALIVE, ERROR = (
    0x06, 0x01, 0x03, 0x04, 0x08, 0x10, 0x11, 0x3B, 0x3F)
failures = []


def check(name, ok, detail=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""),
          flush=True)
    if not ok:
        failures.append(name)


def find_hidraw():
    for uevent in glob.glob("/sys/class/hidraw/*/device/uevent"):
        if "HID_ID=0003:00001209:0000F1D0" in open(uevent).read():
            return "/dev/" + uevent.split("/")[4]
    sys.exit("FAIL no hidraw node with the key's IDs")


class Hid:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        self.inbox = []

    def report(self, r):
        os.write(self.fd, b"\0" + r.ljust(64, b"\0"))

    def send(self, cid, cmd, data=b"", bcnt=None, pace=0.0):
        """Writes a message; `pace` seconds between reports, as a USB host's 1 ms frames
        would space them (uhid queues at most 32 reports and drops the rest)."""
        n = len(data) if bcnt is None else bcnt
        self.report(struct.pack(">IBH", cid, 0x80 | cmd, n) + data[:57])
        rest, seq = data[57:], 0
        while rest:
            if pace:
                time.sleep(pace)
            self.report(struct.pack(">IB", cid, seq) + rest[:59])
            rest, seq = rest[59:], seq + 1

    def read_report(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 64) if r else None

    def recv(self, cid, timeout=10.0, keepalives=None):
        """The next message on cid other than a keepalive (keepalives go to `keepalives`
        when given; other channels' messages are kept for later)."""
        while True:
            i = next((i for i, m in enumerate(self.inbox) if m[0] == cid), None)
            if i is None:
                break
            m = self.inbox.pop(i)
            if m[1] != KEEPALIVE:
                return m
        end = time.monotonic() + timeout
        partial = None
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r = self.read_report(left)
            if r is None:
                return None
            rcid = struct.unpack(">I", r[:4])[0]
            if r[4] & 0x80:
                cmd, n = r[4] & 0x7F, struct.unpack(">H", r[5:7])[0]
                partial = [rcid, cmd, n, bytearray(r[7:7 + n])]
            elif partial and rcid == partial[0]:
                partial[3] += r[5:5 + partial[2] - len(partial[3])]
            else:
                continue
            if len(partial[3]) >= partial[2]:
                m = (partial[0], partial[1], bytes(partial[3]))
                partial = None
                if m[0] == cid and m[1] == KEEPALIVE:
                    if keepalives is not None:
                        keepalives.append((time.monotonic(), m[2][0]))
                    continue
                if m[0] == cid:
                    return m
                self.inbox.append(m)

    def init(self):
        nonce = os.urandom(8)
        self.send(BROADCAST, INIT, nonce)
        m = self.recv(BROADCAST)
        assert m and m[1] == INIT and m[2][:8] == nonce, m
        return struct.unpack(">I", m[2][8:12])[0], m[2]


def make_credential(rp="hid.hybrid-bridge.test"):
    return bytes([0x01]) + cbor.encode({
        1: os.urandom(32), 2: {"id": rp, "name": "HID"},
        3: {"id": b"u1", "name": "u", "displayName": "U"},
        4: [{"alg": -7, "type": "public-key"}]})


def set_mode(mode):
    with open("phone.mode", "w") as f:
        f.write(mode)


def log_count(text):
    try:
        return open("key.log", errors="replace").read().count(text)
    except FileNotFoundError:
        return 0


def wait_log(text, before, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log_count(text) > before:
            return True
        time.sleep(0.1)
    return False


def main():
    dev = Hid(find_hidraw())
    a, info = dev.init()
    check("INIT allocates a channel and echoes the nonce",
          a not in (0, BROADCAST) and info[12] == 2 and info[16] & 0x0D == 0x0D,
          "cid %08x, capabilities %#04x" % (a, info[16]))
    b, _ = dev.init()
    check("a second INIT allocates another channel", b != a)

    dev.send(0, PING, b"x")
    m = dev.recv(0)
    check("channel 0 is ERR_INVALID_CHANNEL", m == (0, ERROR, b"\x0b"), repr(m))
    dev.send(0x12345678, PING, b"x")
    m = dev.recv(0x12345678)
    check("an unallocated channel is ERR_INVALID_CHANNEL", m == (0x12345678, ERROR, b"\x0b"), repr(m))
    dev.send(BROADCAST, PING, b"x")
    m = dev.recv(BROADCAST)
    check("PING on the broadcast channel is ERR_INVALID_CHANNEL", m == (BROADCAST, ERROR, b"\x0b"), repr(m))
    dev.send(a, CBOR, b"\x04", bcnt=7610)
    m = dev.recv(a)
    check("a 7610-byte message is ERR_INVALID_LEN", m == (a, ERROR, b"\x03"), repr(m))
    dev.report(struct.pack(">IBH", a, 0x80 | PING, 200) + b"\1" * 57)
    dev.report(struct.pack(">IB", a, 1) + b"\1" * 59)
    m = dev.recv(a)
    check("a continuation out of order is ERR_INVALID_SEQ", m == (a, ERROR, b"\x04"), repr(m))
    dev.report(struct.pack(">IBH", a, 0x80 | PING, 200) + b"\1" * 57)
    t0 = time.monotonic()
    m = dev.recv(a, timeout=5)
    check("a half-sent message is ERR_MSG_TIMEOUT", m == (a, ERROR, b"\x05"),
          "%r after %.2f s" % (m, time.monotonic() - t0))
    big = os.urandom(7609)
    t0 = time.monotonic()
    dev.send(a, PING, big, pace=0.001)
    m = dev.recv(a, timeout=20)
    note = ""
    if m != (a, PING, big):
        # hidraw keeps 64 reports per reader and drops the rest, from a USB key as from this
        # one: a reader starved for longer than that (this guest on a busy host) loses part of
        # the echo. One more try tells that apart from a key that fragments wrongly.
        note = ", on the second try: the first lost reports in the kernel (%r)" % (repr(m)[:40],)
        t0 = time.monotonic()
        dev.send(a, PING, big, pace=0.001)
        m = dev.recv(a, timeout=20)
    check("a 7609-byte PING echoes through the kernel (129 reports each way)",
          m == (a, PING, big),
          ("%.2f s" % (time.monotonic() - t0) if m == (a, PING, big) else repr(m)[:80]) + note)
    dev.send(a, MSG, bytes([0, 3, 0, 0, 0]))
    m = dev.recv(a)
    check("CTAPHID_MSG (U2F) is ERR_INVALID_CMD, as on a CTAP2-only key", m == (a, ERROR, b"\x01"), repr(m))
    dev.send(a, WINK)
    m = dev.recv(a)
    check("WINK answers empty", m == (a, WINK, b""), repr(m))
    dev.send(a, LOCK, b"\x03")
    m = dev.recv(a)
    dev.send(b, PING, b"b")
    m2 = dev.recv(b)
    dev.send(a, LOCK, b"\x00")
    dev.recv(a)
    dev.send(b, PING, b"b")
    m3 = dev.recv(b)
    check("LOCK makes other channels busy until released",
          m == (a, LOCK, b"") and m2 == (b, ERROR, b"\x06") and m3 == (b, PING, b"b"),
          repr((m, m2, m3)))
    dev.send(a, CBOR, bytes([0x06, 0xA0]))
    m = dev.recv(a)
    check("clientPIN is CTAP1_ERR_INVALID_COMMAND", m == (a, CBOR, b"\x01"), repr(m))

    # A ceremony nobody answers: keepalives, busy for others, CANCEL.
    set_mode("ignore")
    keepalives = []
    dev.send(a, CBOR, make_credential())
    m = dev.recv(a, timeout=1.5, keepalives=keepalives)
    dev.send(b, CBOR, b"\x04")
    busy = dev.recv(b)
    dev.recv(a, timeout=1.0, keepalives=keepalives)
    check("keepalives (UPNEEDED) flow while the QR code waits",
          m is None and len(keepalives) >= 10 and all(s == 2 for _, s in keepalives),
          "%d keepalives in 2.5 s" % len(keepalives))
    check("another channel is ERR_CHANNEL_BUSY meanwhile", busy == (b, ERROR, b"\x06"), repr(busy))
    dev.send(a, CANCEL)
    m = dev.recv(a)
    check("CANCEL answers the request with CTAP2_ERR_KEEPALIVE_CANCEL", m == (a, CBOR, b"\x2d"), repr(m))
    dev.send(b, CBOR, b"\x04")
    m = dev.recv(b)
    check("the other channel is served after the cancel", m is not None and m[2][:1] == b"\x00", repr(m)[:60])

    # INIT on the busy channel resynchronises it.
    dev.send(a, CBOR, make_credential())
    dev.recv(a, timeout=1.0, keepalives=[])
    nonce = os.urandom(8)
    dev.send(a, INIT, nonce)
    m = dev.recv(a)
    dev.send(a, CBOR, b"\x04")
    m2 = dev.recv(a)
    check("INIT on a busy channel resynchronises it",
          m is not None and m[1] == INIT and m[2][:8] == nonce and m[2][8:12] == struct.pack(">I", a)
          and m2 is not None and m2[2][:1] == b"\x00", repr(m)[:60])

    # The phone vanishes: it connects, waits for its person's approval, and is killed.
    set_mode("prompt")
    shown = log_count("waiting for you to confirm on the phone")
    keepalives = []
    dev.send(a, CBOR, make_credential())
    connected = wait_log("waiting for you to confirm on the phone", shown, 90)
    try:
        pid = int(open("phone.pid").read())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError) as e:
        print("could not kill the phone: %s" % e)
    t0 = time.monotonic()
    m = dev.recv(a, timeout=60, keepalives=keepalives)
    check("the phone vanishing mid-ceremony is CTAP1_ERR_OTHER, not a hang",
          connected and m == (a, CBOR, b"\x7f"),
          "%r %.1f s after the kill" % (m, time.monotonic() - t0))
    set_mode("scan")
    dev.send(a, CBOR, b"\x04")
    m = dev.recv(a)
    check("the key serves the next request", m is not None and m[2][:1] == b"\x00")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
