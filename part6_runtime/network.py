"""Network modes: ``none`` (own namespace, loopback only), ``host``, ``private`` (slirp4netns).

A new network namespace has one interface, ``lo``, and it is *down*: even 127.0.0.1 does not
work until something sets IFF_UP. That is one ioctl(2) on any socket of the namespace, no
``ip`` binary needed (the container's rootfs may have none).

``private`` adds outbound access without root on the host network: slirp4netns, started
from the host side with the pid of a process in the new namespace, creates a tap device
there and runs a user-mode TCP/IP stack (10.0.2.100 inside, gateway 10.0.2.2, DNS 10.0.2.3).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import stat
import struct
import subprocess

from part5_namespaces import read_map

from .errors import ContainerError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: char ifr_name[16]; short ifr_flags; (union pad)

SLIRP_DNS = "10.0.2.3"
#: the TUN/TAP device slirp4netns opens to create tap0 in the container's network namespace
TUN_DEVICE = "/dev/net/tun"


class NetworkError(ContainerError):
    """The container's network could not be set up."""


def interface_up(name: str = "lo") -> None:
    """Set IFF_UP on interface ``name`` of the calling process's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # int ioctl(int fd, SIOCGIFFLAGS / SIOCSIFFLAGS, struct ifreq *ifr);
        try:
            request = _IFREQ.pack(name.encode(), 0)
            flags = _IFREQ.unpack(fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _IFREQ.pack(name.encode(), flags | IFF_UP))
        except OSError as e:
            raise OSError(e.errno, f"bringing up {name}: {os.strerror(e.errno)}") from None


def slirp4netns_path() -> str | None:
    return shutil.which("slirp4netns")


def private_network_problem() -> str | None:
    """Why network 'private' cannot work for this process, in one line, or None.

    slirp4netns runs with our credentials and opens /dev/net/tun; on some hosts the device is
    root's alone (mode 0600), and an ordinary user (root of a user namespace included: its
    capabilities do not reach a file of an unmapped owner) is refused.
    """
    if slirp4netns_path() is None:
        return "network 'private' needs slirp4netns (apt-get install slirp4netns)"
    if not os.access(TUN_DEVICE, os.R_OK | os.W_OK):
        try:
            mode = stat.filemode(os.stat(TUN_DEVICE).st_mode)
        except OSError:
            return f"network 'private' needs {TUN_DEVICE}, which this host lacks: use --network none or --network host"
        return (f"network 'private' needs {TUN_DEVICE} for slirp4netns, which uid {_host_uid()} may not open "
                f"({mode} here): use --network none or --network host")
    return None


def _host_uid() -> int:
    """Our uid as the host sees it (root of a user namespace is an ordinary user outside)."""
    uid = os.getuid()
    for m in read_map("self", "uid"):
        outside = m.to_outside(uid)
        if outside is not None:
            return outside
    return uid


class Slirp:
    """A slirp4netns process serving the network namespace of ``pid``."""

    def __init__(self, pid: int, mtu: int = 65520) -> None:
        problem = private_network_problem()
        if problem is not None:
            raise NetworkError(problem)
        exe = slirp4netns_path()
        ready_r, ready_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [exe, "--configure", f"--mtu={mtu}", f"--ready-fd={ready_w}", str(pid), "tap0"],
                pass_fds=(ready_w,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            os.close(ready_w)
            ready_w = -1
            # slirp4netns writes "1" once tap0 is configured, or exits
            ready = os.read(ready_r, 1)
        finally:
            if ready_w >= 0:
                os.close(ready_w)
            os.close(ready_r)
        if ready != b"1":
            _, err = self.process.communicate()
            raise NetworkError(f"slirp4netns failed for pid {pid}: {err.decode(errors='replace').strip()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
