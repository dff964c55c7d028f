#!/usr/bin/env python3
"""Writes the uncompressed ELF kernel inside an xz-compressed x86 bzImage (Debian's vmlinuz).

QEMU boots that ELF directly through its PVH entry point, which saves several seconds of
in-guest decompression under software emulation.
Usage: extract-vmlinux.py VMLINUZ OUT
"""
import lzma
import sys


def main() -> int:
    data = open(sys.argv[1], "rb").read()
    pos = data.find(b"\xfd7zXZ\x00")
    while pos >= 0:
        try:
            out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[pos:])
        except lzma.LZMAError:
            out = b""
        if out[:4] == b"\x7fELF":
            with open(sys.argv[2], "wb") as f:
                f.write(out)
            return 0
        pos = data.find(b"\xfd7zXZ\x00", pos + 1)
    print(f"{sys.argv[1]}: no xz-compressed ELF kernel inside", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
