"""A small network lab for the multi-host tests and the network check: one Linux network namespace per party.

Two ways to join the namespaces (both need root, CAP_NET_ADMIN):

* ``PartyNet(n, "veth")``: a bridge in a namespace of its own, one veth pair per party (``eth0`` inside,
  MTU 65000 as the TUN devices). Kernel forwarding, no added delay: the floor.
* ``PartyNet(n, "router", rtt_s=..., rate_bit_s=...)``: a TUN device per party (``tun0`` inside), all
  joined by :class:`DelayRouter`, a user-space router in this process that reads each IP packet from the
  sender's TUN file descriptor and writes it to the destination's after a one-way delay of ``rtt_s / 2``
  and the serialisation time of a ``rate_bit_s`` link per sender (a token bucket with an unbounded queue:
  nothing is dropped). ``tc`` here has ``tbf`` but no ``netem``, so this is how latency is emulated. The
  TUN MTU is 65000 bytes, so the router handles a few thousand packets per second at 1 Gbit/s.

Addresses ``10.<subnet>.0.<rank+1>/24`` exist only inside the namespaces (no route leaves them).
Everything made is removed on exit, also after a failure: the router stops, the TUN descriptors are
closed (which deletes the devices) and the namespaces are deleted (with their veths and bridge).
"""
from __future__ import annotations

import fcntl
import heapq
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
TUN_MTU = 65000


class NetLabUnavailable(RuntimeError):
    """Namespaces or TUN devices cannot be made here (not root, no iproute2, no /dev/net/tun)."""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class DelayRouter(threading.Thread):
    """Forward IPv4 packets between TUN descriptors by destination address, each after
    ``delay_s`` (one way) plus its serialisation time at ``rate_bit_s`` on its sender's link."""

    def __init__(self, routes: dict[bytes, int], delay_s: float, rate_bit_s: float | None):
        super().__init__(name="delay-router", daemon=True)
        self.routes, self.delay_s, self.rate = dict(routes), float(delay_s), rate_bit_s
        self.fds = sorted(set(self.routes.values()))
        for fd in self.fds:
            os.set_blocking(fd, False)
        self.packets = self.bytes = 0
        self.max_lateness_s = 0.0        # the worst delay beyond the scheduled one (the router's own floor)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def run(self) -> None:
        queue: list = []                  # (due time, sequence, destination fd, packet)
        link_free = {fd: 0.0 for fd in self.fds}   # when each sender's link has finished its last packet
        seq = 0
        while not self._stop_event.is_set():
            now = time.monotonic()
            wait = 0.1 if not queue else max(0.0, queue[0][0] - now)
            readable, _, _ = select.select(self.fds, [], [], min(wait, 0.1))
            now = time.monotonic()
            for fd in readable:
                while True:
                    try:
                        packet = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if len(packet) < 20 or packet[0] >> 4 != 4:
                        continue                   # IPv4 only (IPv6 router solicitations are dropped)
                    dst = self.routes.get(packet[16:20])
                    if dst is None:
                        continue
                    depart = now
                    if self.rate:
                        depart = max(now, link_free[fd]) + len(packet) * 8 / self.rate
                        link_free[fd] = depart
                    heapq.heappush(queue, (depart + self.delay_s, seq, dst, packet))
                    seq += 1
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                due, _, dst, packet = heapq.heappop(queue)
                self.max_lateness_s = max(self.max_lateness_s, now - due)
                os.write(dst, packet)
                self.packets += 1
                self.bytes += len(packet)


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class PartyNet:
    """``n`` namespaces, one per party, joined by a bridge (``"veth"``) or by :class:`DelayRouter`
    (``"router"``); a context manager. ``ns[rank]``, ``addr[rank]`` and ``ifname`` (the interface inside)
    say where each party runs; :meth:`exec_prefix` is the command prefix that runs a program there."""

    def __init__(self, n: int, mode: str = "veth", *, rtt_s: float = 0.0, rate_bit_s: float | None = None,
                 subnet: int = 77):
        if mode not in ("veth", "router"):
            raise ValueError(f"mode = {mode!r}: 'veth' or 'router'")
        self.n, self.mode, self.rtt_s, self.rate_bit_s = n, mode, rtt_s, rate_bit_s
        self.tag = f"pl{os.getpid() % 100000}{mode[0]}{subnet}"
        self.ns = [f"{self.tag}p{r}" for r in range(n)]
        self.addr = [f"10.{subnet}.0.{r + 1}" for r in range(n)]
        self.ifname = "eth0" if mode == "veth" else "tun0"
        self.router: DelayRouter | None = None
        self._made: list[str] = []
        self._fds: list[int] = []

    def exec_prefix(self, rank: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns[rank]]

    def __enter__(self) -> PartyNet:
        if shutil.which("ip") is None:
            raise NetLabUnavailable("the `ip` command (iproute2) is not installed")
        try:
            self._make()
        except BaseException as exc:
            self.close()
            if isinstance(exc, (subprocess.CalledProcessError, OSError)):
                detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
                raise NetLabUnavailable(f"cannot build the namespaces (needs root / CAP_NET_ADMIN): "
                                        f"{detail}") from exc
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _make(self) -> None:
        if self.mode == "veth":
            switch = f"{self.tag}sw"
            self._add_ns(switch)
            ip("-n", switch, "link", "add", "br0", "type", "bridge")
            ip("-n", switch, "link", "set", "br0", "up")
        routes = {}
        for rank, ns in enumerate(self.ns):
            self._add_ns(ns)
            if self.mode == "veth":
                ip("-n", switch, "link", "add", f"port{rank}", "type", "veth", "peer", "name", "eth0", "netns", ns)
                ip("-n", switch, "link", "set", f"port{rank}", "mtu", str(TUN_MTU), "master", "br0", "up")
                ip("-n", ns, "link", "set", "eth0", "mtu", str(TUN_MTU))   # as the TUN devices: a fair floor
            else:
                fd = _open_tun(f"{self.tag}t{rank}")
                self._fds.append(fd)
                ip("link", "set", f"{self.tag}t{rank}", "netns", ns)
                ip("-n", ns, "link", "set", f"{self.tag}t{rank}", "name", "tun0")
                ip("-n", ns, "link", "set", "tun0", "mtu", str(TUN_MTU), "txqueuelen", "10000")
                routes[socket.inet_aton(self.addr[rank])] = fd
            ip("-n", ns, "addr", "add", f"{self.addr[rank]}/24", "dev", self.ifname)
            ip("-n", ns, "link", "set", self.ifname, "up")
        if self.mode == "router":
            self.router = DelayRouter(routes, self.rtt_s / 2, self.rate_bit_s)
            self.router.start()

    def close(self) -> None:
        if self.router is not None:
            self.router.stop()
            self.router = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        self._made = []


_ECHO = """
import socket, sys, time
role, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if role == "server":
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, 29599)); srv.listen(1); print("ready", flush=True)
    c, _ = srv.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (b := c.recv(1)):
        c.sendall(b)
else:
    for _ in range(100):
        try:
            c = socket.create_connection((addr, 29599)); break
        except OSError:
            time.sleep(0.05)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(n):
        t0 = time.perf_counter(); c.sendall(b"x"); c.recv(1); times.append(time.perf_counter() - t0)
    times.sort(); print(times[len(times) // 2], times[int(len(times) * 0.9)])
"""


def echo_rtt(net: PartyNet, n: int = 200) -> tuple[float, float]:
    """Median and 90th-percentile round-trip time (s) of a one-byte TCP echo from party 0 to party 1."""
    server = subprocess.Popen([*net.exec_prefix(1), sys.executable, "-c", _ECHO, "server", net.addr[1], "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        out = subprocess.run([*net.exec_prefix(0), sys.executable, "-c", _ECHO, "client", net.addr[1], str(n)],
                             capture_output=True, text=True, timeout=120, check=True).stdout.split()
        return float(out[0]), float(out[1])
    finally:
        server.kill()
        server.wait()


def run_party_commands(net: PartyNet, function: str, player_args: list, *, seed: int | None = None,
                       dealer_seed: int | None = None, port: int = 29511, timeout: float = 300,
                       workdir: str) -> list[dict]:
    """Run ``ppal-lab party`` for each player (rank r in namespace r, ``--args`` = ``player_args[r]``,
    a JSON string) and the dealer (the last namespace), all meeting at player 0's address; return each
    process's outcome (``{'rank', 'value', 'comm_stats'}``), the dealer's last. Raises if any fails."""
    players = len(player_args)
    env = dict(os.environ, GLOO_SOCKET_IFNAME=net.ifname)   # gloo talks over the namespace's link only
    here = os.path.dirname(os.path.abspath(__file__))       # so that "netlab:call_costs" imports there
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    for key in ("RANK", "WORLD_SIZE", "RENDEZVOUS", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    procs, outs = [], [os.path.join(workdir, f"party{r}.pkl") for r in range(players + 1)]
    try:
        for rank in range(players + 1):
            cmd = [*net.exec_prefix(rank), sys.executable, "-m", "ppal_lab.compendium.cli", "party",
                   "--rank", str(rank), "--world-size", str(players), "--rendezvous",
                   f"tcp://{net.addr[0]}:{port}", "--verbose-comm", "--out", outs[rank]]
            if rank == players:
                cmd += [] if dealer_seed is None else ["--dealer-seed", str(dealer_seed)]
            else:
                cmd += ([] if seed is None else ["--seed", str(seed)]) + ["--args", player_args[rank], function]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        deadline = time.monotonic() + timeout
        for rank, proc in enumerate(procs):
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(f"party {rank} exited with {proc.returncode}: {err.decode()[-3000:]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    import pickle

    results = []
    for path in outs:
        with open(path, "rb") as f:
            results.append(pickle.load(f))
    return results


def call_costs(rank: int, repeats: int = 50) -> dict:
    """Party function (``netlab:call_costs``): seconds per opening of a small shared vector (one counted
    player round) and per product (one opening and one request to the dealer), averaged over ``repeats``."""
    import torch

    from ppal_lab.secure.crypten_compat import crypten

    x, y = crypten.cryptensor(torch.zeros(10)), crypten.cryptensor(torch.ones(10))
    costs = {}
    for name, op in (("opening_s", x.get_plain_text), ("product_s", lambda: x * y)):
        crypten.comm.get().barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            op()
        costs[name] = (time.perf_counter() - start) / repeats
    return costs
