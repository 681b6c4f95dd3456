"""A link to the local PostgreSQL that a test can cut like a partition: packets silently dropped.

The test host is a network namespace of its own behind a veth pair on a private /30. Inside
it, socat listens on the namespace's address and relays across the veth to a second socat
on the root side's address, which relays to PostgreSQL on 127.0.0.1. Taking the namespace's
end of the veth down drops every packet both ways, with no reset and no ICMP: what a hung
failover or a cut cable looks like from the receiver.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests import children

PG_PORT = 5432
_READY_SECONDS = 10.0


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")


@dataclass
class Link:
    namespace: str
    inner: str  # the veth end inside the namespace
    host: str  # the namespace's address: connect here to reach PostgreSQL across the link
    port: int = PG_PORT

    def down(self) -> None:
        _run("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.inner, "down")

    def up(self) -> None:
        _run("ip", "netns", "exec", self.namespace, "ip", "link", "set", self.inner, "up")


def _free_subnet() -> tuple[str, str]:
    """Two addresses of a /30 no interface on this host uses (a random one, checked)."""
    taken = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        raw = uuid.uuid4().bytes
        prefix = f"10.{200 + raw[0] % 50}.{raw[1]}.{raw[2] & 0xFC}"
        base = prefix.rsplit(".", 1)[0]
        last = int(prefix.rsplit(".", 1)[1])
        outer, inner = f"{base}.{last + 1}", f"{base}.{last + 2}"
        if f" {outer}/" not in taken and f" {inner}/" not in taken:
            return outer, inner
    raise RuntimeError("no free 10.x.y.z/30 found")


def _socat(prefix: list[str], listen: str, target: str) -> subprocess.Popen[bytes]:
    # Its own session, so the forked relays die with it (killpg by its id).
    return subprocess.Popen(
        [*prefix, "socat", f"TCP-LISTEN:{PG_PORT},bind={listen},fork,reuseaddr", f"TCP:{target}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_listening(host: str) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    while True:
        try:
            socket.create_connection((host, PG_PORT), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay on {host}:{PG_PORT} never listened") from None
            time.sleep(0.05)


@contextlib.contextmanager
def postgres_link() -> Iterator[Link]:
    """PostgreSQL (127.0.0.1:5432) reachable at `link.host:link.port` across a veth pair."""
    for tool in ("ip", "socat"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"the partition test needs `{tool}` (apt-get install iproute2 socat)"
            )
    tag = uuid.uuid4().hex[:8]
    namespace, outer_if, inner_if = f"vhpart-{tag}", f"vho{tag}", f"vhi{tag}"
    outer, inner = _free_subnet()
    relays: list[subprocess.Popen[bytes]] = []
    _run("ip", "netns", "add", namespace)
    try:
        _run("ip", "link", "add", outer_if, "type", "veth", "peer", "name", inner_if)
        _run("ip", "link", "set", inner_if, "netns", namespace)
        _run("ip", "addr", "add", f"{outer}/30", "dev", outer_if)
        _run("ip", "link", "set", outer_if, "up")
        in_ns = ["ip", "netns", "exec", namespace]
        _run(*in_ns, "ip", "addr", "add", f"{inner}/30", "dev", inner_if)
        _run(*in_ns, "ip", "link", "set", inner_if, "up")
        relays.append(_socat([], outer, f"127.0.0.1:{PG_PORT}"))
        relays.append(_socat(in_ns, inner, f"{outer}:{PG_PORT}"))
        _wait_listening(inner)
        yield Link(namespace=namespace, inner=inner_if, host=inner)
    finally:
        for relay in relays:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(relay.pid, signal.SIGKILL)
            relay.wait(timeout=children.KILLED_WAIT_SECONDS)
        subprocess.run(["ip", "link", "del", outer_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
