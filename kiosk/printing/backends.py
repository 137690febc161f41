"""Where ticket bytes go: one small class per connection type.

A :class:`Backend` opens a :class:`Channel`; a channel writes bytes and, where the
connection is two-way (network, serial, USB), reads the printer's status replies. Every
foreign error (``OSError``, pyserial's, pyusb's) is translated here into
:class:`~kiosk.errors.PrinterUnavailable` (could not open) or
:class:`~kiosk.errors.PrintFailed` (broke off while writing). Each job opens a fresh
channel and closes it, so an unplugged, switched-off or restarted printer is simply found
again on the next ticket.

Timeouts are explicit everywhere: python-escpos's network default is 60 s and pyusb's is
to block forever; ours is ``printer.timeout_s`` (a few seconds).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Protocol

from kiosk.config import PrinterConfig
from kiosk.errors import PrinterUnavailable, PrintFailed


class Channel(Protocol):
    """An open connection to the printer, for one job."""

    def write(self, data: bytes) -> None:
        """Send ``data``; PrintFailed if the connection breaks."""

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes the printer sent, or ``b""`` if none came in ``timeout``."""

    def finish(self) -> None:
        """The job is complete: hand it over where the connection is one-way."""

    def close(self) -> None:
        """Close; never raises."""


class Backend(Protocol):
    """A connection type."""

    name: str
    can_query: bool
    """Whether the printer can answer status queries over this connection."""

    def open(self, job: str) -> Channel:
        """Open a channel for the job named ``job``, or raise PrinterUnavailable."""


# --------------------------------------------------------------------------- network


class _SocketChannel:
    def __init__(self, sock: socket.socket, where: str) -> None:
        self._sock = sock
        self._where = where

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise PrintFailed(f"connection to {self._where} broke while printing: {exc}") from exc

    def read(self, n: int, timeout: float) -> bytes:
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(n)
        except (TimeoutError, OSError):
            return b""

    def finish(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class NetworkBackend:
    """``printer.type: network``: raw TCP (port 9100), as Epson, Star and most LAN printers."""

    name = "network"
    can_query = True

    def __init__(self, host: str, port: int = 9100, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s

    def open(self, job: str) -> Channel:
        where = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot connect to the printer at {where}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _SocketChannel(sock, where)


# --------------------------------------------------------------------------- serial


class _SerialChannel:
    def __init__(self, port: Any, device: str) -> None:
        self._port = port
        self._device = device

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except Exception as exc:  # pyserial raises SerialException / SerialTimeoutException
            raise PrintFailed(f"writing to {self._device} failed: {exc}") from exc

    def read(self, n: int, timeout: float) -> bytes:
        try:
            self._port.timeout = timeout
            return bytes(self._port.read(n))
        except Exception:
            return b""

    def finish(self) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self._port.close()


class SerialBackend:
    """``printer.type: serial``: RS-232 or a USB-serial adapter, with a write timeout."""

    name = "serial"
    can_query = True

    def __init__(self, device: str, baudrate: int = 9600, timeout_s: float = 5.0) -> None:
        self.device, self.baudrate, self.timeout_s = device, baudrate, timeout_s

    def open(self, job: str) -> Channel:
        try:
            import serial
        except ImportError as exc:
            raise PrinterUnavailable("printer.type serial needs pyserial "
                                     "(pip install 'kiosk[serial]')") from exc
        try:
            port = serial.Serial(self.device, self.baudrate, timeout=self.timeout_s,
                                 write_timeout=self.timeout_s)
        except Exception as exc:
            raise PrinterUnavailable(f"cannot open {self.device}: {exc}") from exc
        return _SerialChannel(port, self.device)


# --------------------------------------------------------------------------- usb


class _UsbChannel:
    def __init__(self, device: Any, ep_out: Any, ep_in: Any, timeout_ms: int) -> None:
        self._dev, self._out, self._in, self._timeout_ms = device, ep_out, ep_in, timeout_ms

    def write(self, data: bytes) -> None:
        try:
            self._out.write(data, timeout=self._timeout_ms)
        except Exception as exc:  # usb.core.USBError / USBTimeoutError
            raise PrintFailed(f"USB write failed: {exc}") from exc

    def read(self, n: int, timeout: float) -> bytes:
        if self._in is None:
            return b""
        try:
            return bytes(self._in.read(max(n, self._in.wMaxPacketSize),
                                       timeout=int(timeout * 1000)))[:n]
        except Exception:
            return b""

    def finish(self) -> None:
        pass

    def close(self) -> None:
        try:
            import usb.util
            usb.util.dispose_resources(self._dev)
        except Exception:  # noqa: S110 - closing is best effort
            pass


class UsbBackend:
    """``printer.type: usb``: a USB printer-class device, by vendor and product id."""

    name = "usb"
    can_query = True

    def __init__(self, vendor: int, product: int, timeout_s: float = 5.0) -> None:
        self.vendor, self.product = vendor, product
        self.timeout_ms = int(timeout_s * 1000)

    def open(self, job: str) -> Channel:
        try:
            import usb.core
            import usb.util
        except ImportError as exc:
            raise PrinterUnavailable("printer.type usb needs pyusb "
                                     "(pip install 'kiosk[usb]')") from exc
        ident = f"{self.vendor:04x}:{self.product:04x}"
        try:
            dev = usb.core.find(idVendor=self.vendor, idProduct=self.product)
            if dev is None:
                raise PrinterUnavailable(f"no USB printer {ident} is plugged in (lsusb shows "
                                         "what is; packaging/README.md covers permissions)")
            if dev.is_kernel_driver_active(0):
                dev.detach_kernel_driver(0)
            intf = dev.get_active_configuration()[(0, 0)]
            direction = usb.util.endpoint_direction

            def find(d: int) -> Any:
                return usb.util.find_descriptor(
                    intf, custom_match=lambda e: direction(e.bEndpointAddress) == d)

            ep_out, ep_in = find(usb.util.ENDPOINT_OUT), find(usb.util.ENDPOINT_IN)
        except PrinterUnavailable:
            raise
        except Exception as exc:  # USBError, NoBackendError, permission errors
            raise PrinterUnavailable(f"cannot open USB printer {ident}: {exc}") from exc
        if ep_out is None:
            raise PrinterUnavailable(f"USB device {ident} has no output endpoint")
        return _UsbChannel(dev, ep_out, ep_in, self.timeout_ms)


# --------------------------------------------------------------------------- one-way


class _BufferChannel:
    """Collects the job and hands it over at close (file, CUPS, virtual)."""

    def __init__(self, deliver: Any) -> None:
        self._parts: list[bytes] = []
        self._deliver = deliver

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def read(self, n: int, timeout: float) -> bytes:
        return b""

    def finish(self) -> None:
        self._deliver(b"".join(self._parts))

    def close(self) -> None:
        pass


class FileBackend:
    """``printer.type: file``: append the raw bytes to a file or a device node
    (e.g. ``/dev/usb/lp0``)."""

    name = "file"
    can_query = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, job: str) -> Channel:
        return _BufferChannel(self._append)

    def _append(self, payload: bytes) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            raise PrintFailed(f"writing to {self.path} failed: {exc.strerror}") from exc
        finally:
            os.close(fd)


class CupsBackend:
    """``printer.type: cups``: a raw CUPS queue, through ``lp -o raw``."""

    name = "cups"
    can_query = False

    def __init__(self, queue: str, timeout_s: float = 5.0) -> None:
        self.queue, self.timeout_s = queue, timeout_s

    def open(self, job: str) -> Channel:
        if shutil.which("lp") is None:
            raise PrinterUnavailable("printer.type cups needs the lp command (apt-get install "
                                     "cups-client)")
        return _BufferChannel(lambda payload: self._submit(payload, job))

    def _submit(self, payload: bytes, job: str) -> None:
        try:
            proc = subprocess.run(["lp", "-d", self.queue, "-o", "raw", "-t", job],  # noqa: S603,S607
                                  input=payload,
                                  capture_output=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrintFailed(f"lp did not take the job: {exc}") from exc
        if proc.returncode != 0:
            raise PrintFailed(f"lp -d {self.queue}: {proc.stderr.decode(errors='replace').strip()}")


class VirtualBackend:
    """``printer.type: virtual``: each ticket saved in a folder as ``<number>.bin`` (the
    ticket printer adds ``<number>.png``), so a demo shows real tickets without paper."""

    name = "virtual"
    can_query = False

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, ticket_id: str, suffix: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in ticket_id)
        return self.folder / f"{safe}{suffix}"

    def open(self, job: str) -> Channel:
        return _BufferChannel(lambda payload: self._save(payload, job))

    def _save(self, payload: bytes, job: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path_for(job, ".bin").write_bytes(payload)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot write to {self.folder}: {exc.strerror}") from exc


class NoBackend:
    """``printer.type: none``: no printer; every job is 'not printed'."""

    name = "none"
    can_query = False

    def open(self, job: str) -> Channel:
        raise PrinterUnavailable("no printer is configured (printer.type: none)")


def make_backend(cfg: PrinterConfig) -> Backend:
    """The backend for ``printer.type``."""
    match cfg.type:
        case "network":
            assert cfg.host is not None
            return NetworkBackend(cfg.host, cfg.port, cfg.timeout_s)
        case "serial":
            assert cfg.device is not None
            return SerialBackend(cfg.device, cfg.baudrate, cfg.timeout_s)
        case "usb":
            assert cfg.usb_vendor is not None and cfg.usb_product is not None
            return UsbBackend(cfg.usb_vendor, cfg.usb_product, cfg.timeout_s)
        case "file":
            assert cfg.path is not None
            return FileBackend(cfg.path)
        case "cups":
            assert cfg.cups_name is not None
            return CupsBackend(cfg.cups_name, cfg.timeout_s)
        case "virtual":
            assert cfg.path is not None
            return VirtualBackend(cfg.path)
    return NoBackend()
