"""A small ESC/POS reader for tests: what a byte stream says, as text lines.

It knows the commands kiosk sends (ESC @, ESC t, ESC a, ESC E, ESC !, GS !, GS B, GS ( k,
GS v 0, GS V, DLE EOT) and decodes text in the code page selected by ``ESC t``; the lines
printed white on black (``GS B 1``) are listed in ``facts["inverted"]``.
"""

from __future__ import annotations

CODEPAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}


def decode(data: bytes) -> tuple[list[str], dict[str, object]]:
    """The printed lines, and facts seen on the way (code page, QR content, cut, sizes)."""
    facts: dict[str, object] = {"qr": [], "sizes": [], "cut": False, "raster_bytes": 0,
                                "inverted": []}
    codec = "cp437"
    inverted = False
    lines: list[str] = []
    text = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x1B:  # ESC
            cmd = data[i + 1]
            if cmd == ord("@"):
                i += 2
            elif cmd == ord("t"):
                codec = CODEPAGES[data[i + 2]]
                facts["codepage"] = codec
                i += 3
            elif cmd in (ord("a"), ord("E"), ord("!"), ord("-"), ord("M"), ord("G")):
                i += 3
            else:
                raise ValueError(f"unexpected ESC {cmd:#x} at {i}")
        elif b == 0x1D:  # GS
            cmd = data[i + 1]
            if cmd == ord("!"):
                facts["sizes"].append(data[i + 2])  # type: ignore[attr-defined]
                i += 3
            elif cmd == ord("B"):
                inverted = bool(data[i + 2] & 1)
                i += 3
            elif cmd == ord("("):  # GS ( k pL pH cn fn [params]
                n = data[i + 3] | data[i + 4] << 8
                body = data[i + 5:i + 5 + n]
                if data[i + 2] == ord("k") and body[:2] == b"1P":
                    facts["qr"].append(body[3:].decode())  # type: ignore[attr-defined]
                i += 5 + n
            elif cmd == ord("v"):  # GS v 0 m xL xH yL yH data
                x = data[i + 4] | data[i + 5] << 8
                y = data[i + 6] | data[i + 7] << 8
                facts["raster_bytes"] = int(facts["raster_bytes"]) + x * y  # type: ignore[call-overload]
                i += 8 + x * y
            elif cmd == ord("V"):
                facts["cut"] = True
                i += 4 if data[i + 2] in (65, 66) else 3
            else:
                raise ValueError(f"unexpected GS {cmd:#x} at {i}")
        elif b == 0x0A:
            lines.append(text.decode(codec))
            if inverted:
                facts["inverted"].append(lines[-1])  # type: ignore[attr-defined]
            text.clear()
            i += 1
        else:
            text.append(b)
            i += 1
    if text:
        lines.append(text.decode(codec))
    return lines, facts
