"""The client over a Zenoh network (``connect(zenoh=...)``): real nodes that reach their
group through a ``dhost router`` on loopback, found, called and cast to through it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import dhost
from conftest import DHOST, PATIENCE, _env, eventually, guest, inspect_wit, names_when

pytestmark = pytest.mark.node

try:
    import zenoh  # noqa: F401
except ImportError:
    pytest.fail(
        "eclipse-zenoh is not installed: pip install -e 'clients/python[zenoh]' "
        "(scripts/test.sh does)",
        pytrace=False,
    )


@pytest.fixture
def router() -> Iterator[str]:
    """A `dhost router` on a free loopback port: its endpoint."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp/127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(DHOST), "router", "--listen", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert "dhost router" in line, line
    yield endpoint
    proc.kill()
    proc.wait(timeout=PATIENCE)
    proc.stdout.close()


@pytest.mark.parametrize("keyed", [False, True])
def test_a_client_finds_calls_and_casts_through_a_router(
    start_node, group: str, router: str, tmp_path: Path, keyed: bool
) -> None:
    key_args: list[str] = []
    key_file = None
    if keyed:
        key_file = tmp_path / "group.key"
        subprocess.run([str(DHOST), "keygen", str(key_file)], check=True, capture_output=True, env=_env())
        key_args = ["--key-file", str(key_file), "--encrypt"]
    start_node("kv-z", guest("kv"), "--zenoh", router, *key_args)
    with dhost.connect(group, zenoh=router, key_file=key_file, encrypt=keyed) as client:
        assert names_when(client, ["kv-z"]) == ["kv-z"]
        peer = client.peers(wait=1.0)[0]
        assert peer.tcp is not None and peer.tcp[0].startswith("100::") and peer.tcp[1] == 0
        assert "dhost:kv/store#get" in peer.functions
        # Calls with a reply: Zenoh queries on the node's key.
        assert client.call("kv-z", "dhost:kv/store#put", "k", "v") is None
        assert client.call("kv-z", "dhost:kv/store#get", "k") == "v"
        # A cast to every node that serves it: the client's stream, through the router.
        kv = client.interface("dhost:kv/store", wit=inspect_wit("kv"))
        kv.put("cast", "yes")
        kv.put("cast", "again")
        assert eventually(lambda: kv.get("cast"), "again") == "again"
        with pytest.raises(dhost.Trapped):
            client.call("kv-z", "dhost:kv/admin#crash", "on purpose")
        # (The guest restarted, with a store of its own: the node answers on.)
        assert client.call("kv-z", "dhost:kv/store#put", "after", "crash") is None
        assert client.call("kv-z", "dhost:kv/store#get", "after") == "crash"


def test_a_zenoh_client_with_no_router_says_so(group: str) -> None:
    with pytest.raises(dhost.DhostError, match="needs a router"):
        dhost.connect(group, zenoh_mode="client")
    with pytest.raises(dhost.DhostError, match="cannot join the Zenoh network"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dhost.connect(group, zenoh=f"tcp/127.0.0.1:{port}")


def test_zenoh_addresses_and_keys_are_the_nodes() -> None:
    from dhost.zenohlink import chunk, is_zenoh_address, zenoh_address

    address = zenoh_address(0xAB)
    assert address == ("100::ab", 0)
    assert is_zenoh_address(address)
    assert not is_zenoh_address(("127.0.0.1", 0))
    assert not is_zenoh_address(("100::1", 5))
    assert chunk("dhost:chat/chat#message") == "dhost:chat%2Fchat%23message"
    assert chunk("") == "%"
    assert chunk("é") == "%C3%A9"
