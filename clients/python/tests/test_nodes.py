"""The client against real dhost nodes: discovery, proxies, casts, and every failure
kind that can be provoked."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import dhost
from conftest import DHOST, PATIENCE, Node, eventually, guest, inspect_wit, names_when

pytestmark = pytest.mark.node


def test_peers_and_functions_list_the_node(start_node, client: dhost.Client) -> None:
    node = start_node("kv-a", guest("kv"))
    assert names_when(client, ["kv-a"]) == ["kv-a"]
    peers = client.peers(wait=1.0)
    peer = peers[0]
    host, port = node.tcp.rsplit(":", 1)
    assert peer.tcp == (host, int(port))
    assert "dhost:kv/store#get" in peer.functions
    assert peer.serves("dhost:kv/admin#count")
    functions = client.functions(wait=1.0)
    assert functions["dhost:kv/store#put"] == ["kv-a"]
    assert functions["dhost:kv/admin#crash"] == ["kv-a"]


def test_no_node_answers_on_an_empty_group(client: dhost.Client) -> None:
    assert client.peers(wait=0.2) == []
    with pytest.raises(dhost.NoServer, match="serves dhost:kv/store#get"):
        client.call(None, "dhost:kv/store#get", "k")


# The store in Rust (guests/kv) and in Python (guests/python/kv): the same WIT, so the
# same answers whatever language serves it.
STORES = pytest.mark.parametrize("store", ["kv", "kv-py"])


@STORES
def test_kv_put_and_get_through_the_proxy(start_node, client: dhost.Client, store: str) -> None:
    start_node("kv-a", guest(store))
    kv = client.interface("dhost:kv/store", wit=inspect_wit(store))
    assert sorted(f.__name__ for f in kv) == ["get", "keys", "put"]
    assert kv.get("k") is None
    assert kv.put("k", "v") is None  # a cast: every store runs it
    assert eventually(lambda: kv.get("k"), "v") == "v"
    # A cast's second and third datagrams of the client's stream run too, in order.
    kv.put("k", "w")
    kv.put(key="other", value="x")
    assert eventually(lambda: kv.keys(), ["k", "other"]) == ["k", "other"]
    assert eventually(lambda: kv.get("k"), "w") == "w"
    # `.call` waits until one node has run it.
    assert kv.put.call("k2", "v2") is None
    assert kv.get("k2") == "v2"
    assert kv.get.call("k2", node="kv-a", timeout=2.0) == "v2"
    # The same through the untyped call.
    assert client.call("kv-a", "dhost:kv/store#get", "k2") == "v2"
    assert client.call(None, "dhost:kv/store#keys") == ["k", "k2", "other"]


def test_two_stores_both_run_a_cast(start_node, client: dhost.Client) -> None:
    start_node("kv-a", guest("kv"))
    start_node("kv-b", guest("kv"))
    kv = client.interface("dhost:kv/store", wit=inspect_wit("kv"))
    kv.put("shared", "yes")
    a, b = kv.on("kv-a"), kv.on("kv-b")
    assert eventually(lambda: a.get("shared"), "yes") == "yes"
    assert eventually(lambda: b.get("shared"), "yes") == "yes"
    assert names_when(client, ["kv-a", "kv-b"]) == ["kv-a", "kv-b"]
    assert sorted(client.functions(wait=1.0)["dhost:kv/store#get"]) == ["kv-a", "kv-b"]


def test_a_typed_result_comes_back_as_a_python_value(start_node, client: dhost.Client) -> None:
    start_node("kv-a", guest("kv"))
    start_node("kv-b", guest("kv"))
    wit = inspect_wit("kv")
    kv = client.interface("dhost:kv/store", wit=wit)
    admin = client.interface("dhost:kv/admin", wit=wit, node="kv-b")
    assert admin.count() == dhost.Ok(0)
    kv.put.call("a", "1", node="kv-a")  # on kv-a alone
    assert admin.count() == dhost.Ok(0)
    # kv-b copies it from kv-a: result<option<string>, string>.
    assert admin.fetch("kv-a", "a") == dhost.Ok("1")
    assert admin.fetch("kv-a", "missing") == dhost.Ok(None)
    result = admin.count()
    assert isinstance(result, dhost.Ok) and result.value == 1
    # A failure inside kv-b's own call traps it: the caller gets `trapped`, with the
    # node's message.
    with pytest.raises(dhost.Trapped, match="no node named nobody is on the group"):
        admin.fetch("nobody", "a")


def test_the_node_serves_the_wit(start_node, client: dhost.Client) -> None:
    start_node("kv-a", guest("kv"))
    text = client.describe("dhost:kv/store")
    assert "interface store" in text
    kv = client.interface("dhost:kv/store")
    kv.put.call("k", "v")
    assert kv.get("k") == "v"
    admin = client.interface("dhost:kv/admin")
    assert admin.count() == dhost.Ok(1)
    with pytest.raises(dhost.NoServer, match="no node on .* serves interface dhost:nothing/here"):
        client.describe("dhost:nothing/here")
    # The node's own answer, when it is asked by name.
    with pytest.raises(dhost.NoServer, match="no guest of node kv-a exports dhost:nothing/here"):
        client.describe("dhost:nothing/here", node="kv-a")


def test_no_server(start_node, client: dhost.Client) -> None:
    start_node("kv-a", guest("kv"))
    with pytest.raises(dhost.NoServer, match="serves dhost:nothing/here#f") as e:
        client.call(None, "dhost:nothing/here#f")
    assert e.value.kind == "no-server"
    # The node's own message, when the node is named.
    with pytest.raises(dhost.NoServer, match="node kv-a serves no function dhost:nothing/here#f"):
        client.call("kv-a", "dhost:nothing/here#f")
    with pytest.raises(dhost.NoServer, match="no node named nobody"):
        client.call("nobody", "dhost:kv/store#get", "k")
    chat = client.interface("dhost:chat/chat", wit=inspect_wit("chat"))
    with pytest.raises(dhost.NoServer, match="serves dhost:chat/chat#message"):
        chat.message("py", "nobody hears this")


def test_timeout(start_node, client: dhost.Client) -> None:
    node = start_node("hostile", guest("hostile"))
    attacks = client.interface("dhost:hostile/attacks", wit=inspect_wit("hostile"))
    start = time.monotonic()
    with pytest.raises(dhost.Timeout, match="no reply from node hostile") as e:
        attacks.busy.call(700, timeout=0.2)
    assert time.monotonic() - start < 3.0
    assert e.value.kind == "timeout"
    assert isinstance(e.value, TimeoutError)
    # The connection still works once the late reply comes (and is dropped).
    node.wait_for("busy", lambda: "hostile: busy for 700 ms" in node.stdout())
    assert attacks.busy.call(1, timeout=5.0) is None


@STORES
def test_trapped(start_node, client: dhost.Client, store: str) -> None:
    start_node("kv-a", guest(store))
    admin = client.interface("dhost:kv/admin", wit=inspect_wit(store))
    with pytest.raises(dhost.Trapped, match=f"guest {store} trapped") as e:
        admin.crash("on purpose")
    assert e.value.kind == "trapped"
    assert str(e.value).startswith(f"guest {store} trapped")


def test_a_guest_over_its_time_limit_is_trapped(start_node, client: dhost.Client) -> None:
    start_node("hostile", guest("hostile"), "--max-time", "200ms")
    attacks = client.interface("dhost:hostile/attacks", wit=inspect_wit("hostile"))
    with pytest.raises(dhost.Trapped, match="hostile"):
        attacks.spin.call(timeout=10.0)


def test_refused_by_the_jail(start_node, client: dhost.Client, tmp_path: Path) -> None:
    policy = tmp_path / "jail.toml"
    policy.write_text('[guest.kv]\nserve = ["dhost:kv/store#get from somebody-else"]\n')
    start_node("kv-a", "--jail", policy, guest("kv"))
    kv = client.interface("dhost:kv/store", wit=inspect_wit("kv"))
    with pytest.raises(dhost.Refused) as e:
        kv.get("k")
    assert e.value.kind == "refused"
    assert isinstance(e.value, PermissionError)


def test_bad_arguments_are_refused_before_sending(start_node, client: dhost.Client) -> None:
    start_node("hostile", guest("hostile"))
    attacks = client.interface("dhost:hostile/attacks", wit=inspect_wit("hostile"))
    with pytest.raises(dhost.BadArguments, match=r"argument ms of dhost:hostile/attacks#busy: 4294967296 is out of range for u32"):
        attacks.busy(2**32)
    with pytest.raises(dhost.BadArguments, match="-1 is out of range for u32"):
        attacks.busy.call(-1)
    with pytest.raises(dhost.BadArguments, match="expected u32"):
        attacks.busy(True)
    with pytest.raises(dhost.BadArguments, match="missing a required argument"):
        attacks.write_file("/tmp/x")
    # The node refuses what a caller without WIT sends, with its own message.
    with pytest.raises(dhost.BadArguments, match="ms"):
        client.call("hostile", "dhost:hostile/attacks#busy", "soon")


def test_a_cast_reaches_every_chat_node(start_node, client: dhost.Client) -> None:
    a = start_node("chat-a", guest("chat"))
    b = start_node("chat-b", guest("chat"))
    chat = client.interface("dhost:chat/chat", wit=inspect_wit("chat"))
    for i in range(5):
        chat.message("python", f"hello {i}")
    want = "".join(f"[python]: hello {i}\n" for i in range(5))
    for node in (a, b):
        node.wait_for("the messages", lambda node=node: want in node.stdout().replace("Username: ", ""))
    # A cast to one node, over its TCP port.
    chat.message.cast("python", "to a alone", node="chat-a")
    a.wait_for("the message to a", lambda: "[python]: to a alone" in a.stdout())
    client.cast("dhost:chat/chat#message", "raw", "untyped")
    b.wait_for("the untyped cast", lambda: "[raw]: untyped" in b.stdout())
    assert "to a alone" not in b.stdout()


def test_a_client_of_one_address(start_node) -> None:
    node = start_node("kv-a", guest("kv"))
    with dhost.connect(address=node.tcp, iface="127.0.0.1") as c:
        kv = c.interface("dhost:kv/store", wit=inspect_wit("kv"))
        kv.put("k", "v")  # a cast to that node, over its TCP port
        assert kv.get("k") == "v"
        with pytest.raises(dhost.DhostError, match="needs the group"):
            c.peers()


def test_a_node_that_went_away_is_peer_gone(start_node, client: dhost.Client) -> None:
    node = start_node("kv-a", guest("kv"))
    kv = client.interface("dhost:kv/store", wit=inspect_wit("kv"), node="kv-a")
    assert kv.get("k") is None
    node.kill()
    with pytest.raises(dhost.PeerGone):
        kv.get("k")


def _keygen(path: Path) -> None:
    out = subprocess.run([str(DHOST), "keygen", str(path)], capture_output=True, text=True, timeout=PATIENCE)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("encrypt", [False, True])
def test_a_keyed_group(start_node, group: str, tmp_path: Path, encrypt: bool) -> None:
    pytest.importorskip("blake3")
    if encrypt:
        pytest.importorskip("nacl")
    key = tmp_path / "group.key"
    _keygen(key)
    flags = ["--key-file", key] + (["--encrypt"] if encrypt else [])
    a = start_node("kv-a", *flags, guest("kv"))
    chat = start_node("chat-a", *flags, guest("chat"))
    wit = inspect_wit("kv")
    with dhost.connect(group, iface="127.0.0.1", ttl=0, key_file=key, encrypt=encrypt) as c:
        assert names_when(c, ["chat-a", "kv-a"]) == ["chat-a", "kv-a"]
        kv = c.interface("dhost:kv/store", wit=wit)
        kv.put("k", "v")
        assert eventually(lambda: kv.get("k"), "v") == "v"
        c.cast("dhost:chat/chat#message", "keyed", "hello")
        chat.wait_for("the keyed cast", lambda: "[keyed]: hello" in chat.stdout())
    # Without the key, nodes ignore the client, and it says why.
    with dhost.connect(group, iface="127.0.0.1", ttl=0) as c:
        assert c.peers(wait=0.3) == []
        with pytest.raises(dhost.NoServer, match="group key"):
            c.call(None, "dhost:kv/store#get", "k")
    # A client without the key, given the address, hears that the node wants one.
    with dhost.connect(address=a.tcp, iface="127.0.0.1") as c:
        with pytest.raises(dhost.PeerGone, match="requires the group's key"):
            c.call(None, "dhost:kv/store#get", "k")


@STORES
def test_records_variants_enums_and_flags_cross_both_ways(
    start_node, client: dhost.Client, store: str
) -> None:
    """kv's `entries.find`: a variant, a u8 and flags in; a result of a list of records
    (with an option and an enum) or of a variant error out."""
    start_node("kv-a", guest(store))
    kv = client.interface("dhost:kv/store")
    for key, value in [("a1", "one"), ("a2", "22"), ("b1", "three")]:
        kv.put.call(key, value)
    entries = client.interface("dhost:kv/entries")
    found = entries.find(dhost.Variant("prefix", "a"), 10, {"with-value", "with-length"})
    assert isinstance(found, dhost.Ok), found
    got = [(e.key, e.value, e.length, e.encoding) for e in found.value]
    assert got == [("a1", "one", 3, "text"), ("a2", "22", 2, "number")]
    assert all(isinstance(e, entries.types.Entry) for e in found.value)
    # A record made here goes back as what it is: the class equals itself.
    one = entries.find({"key": "b1"}, 1, frozenset())
    assert one == dhost.Ok([entries.types.Entry(key="b1", value=None, length=0, encoding="text")])
    # A tuple inside a variant, and a case without a payload.
    ranged = entries.find(dhost.Variant("range", ("a2", "b2")), 5, ["with_value"])
    assert [e.value for e in ranged.value] == ["22", "three"]
    # The errors are values of the function's own variant.
    assert entries.find("all", 2, set()) == dhost.Err(dhost.Variant("too-many", 3))
    assert entries.find(dhost.Variant("prefix", ""), 2, set()) == dhost.Err(
        dhost.Variant("empty-prefix", None)
    )
    # Checked here before anything is sent: a u8 out of range, an unknown flag or case.
    with pytest.raises(dhost.BadArguments, match="limit"):
        entries.find("all", 256, set())
    with pytest.raises(dhost.BadArguments, match="with-colour|with_colour"):
        entries.find("all", 1, {"with-colour"})
    with pytest.raises(dhost.BadArguments, match="everything"):
        entries.find("everything", 1, set())


def test_calls_after_the_node_closed_an_idle_connection(start_node, client: dhost.Client) -> None:
    """The node closes a connection idle for its --idle-timeout: the next call opens a new
    one rather than failing with PeerGone."""
    start_node("kv-a", "--idle-timeout", "1s", guest("kv"))
    kv = client.interface("dhost:kv/store", wit=inspect_wit("kv"), node="kv-a")
    kv.put.call("k", "v")
    for _ in range(3):
        time.sleep(2.0)
        assert kv.get("k") == "v"


def test_a_killed_node_is_absent_from_the_next_survey(start_node, client: dhost.Client) -> None:
    """A SIGKILLed node says no goodbye; what it announced before is buffered by the
    client's socket, and must not be taken for an answer to the next survey."""
    start_node("kv-a", guest("kv"))
    b = start_node("kv-b", guest("kv"))
    assert names_when(client, ["kv-a", "kv-b"]) == ["kv-a", "kv-b"]
    time.sleep(1.5)  # the nodes announce meanwhile; the client's socket keeps it
    b.kill()
    assert [p.name for p in client.peers(wait=1.0)] == ["kv-a"]
