"""The demo image the all-in-one cloud seeds: a 1 MiB raw disk that really boots.

Its master boot record holds 26 bytes of 16-bit x86 code that print a line to the
first serial port and to the screen, then halt, so that under a real hypervisor
the demo image shows it ran. The bytes are assembled here by hand (annotated), not
downloaded, so the image is the same everywhere and needs no network.
"""

from __future__ import annotations

import hashlib

MESSAGE = b"Ironbark demo image booted\r\n"
SIZE = 1024 * 1024

_CODE = bytes([
    0xFA,                    # 00 cli
    0x31, 0xC0,              # 01 xor ax, ax
    0x8E, 0xD8,              # 03 mov ds, ax
    0xBE, 0x1A, 0x7C,        # 05 mov si, 0x7c1a      ; the message, at offset 26
    0xAC,                    # 08 .loop: lodsb
    0x84, 0xC0,              # 09 test al, al
    0x74, 0x0A,              # 0b jz .done            ; end of the string
    0xBA, 0xF8, 0x03,        # 0d mov dx, 0x3f8       ; COM1
    0xEE,                    # 10 out dx, al
    0xB4, 0x0E,              # 11 mov ah, 0x0e        ; BIOS teletype
    0xCD, 0x10,              # 13 int 0x10
    0xEB, 0xF1,              # 15 jmp .loop
    0xF4,                    # 17 .done: hlt
    0xEB, 0xFD,              # 18 jmp .done
])


def build() -> bytes:
    sector = bytearray(512)
    sector[: len(_CODE)] = _CODE
    sector[len(_CODE): len(_CODE) + len(MESSAGE) + 1] = MESSAGE + b"\0"
    sector[510:512] = b"\x55\xaa"  # boot signature
    return bytes(sector) + bytes(SIZE - 512)


def sha256() -> str:
    return hashlib.sha256(build()).hexdigest()
