"""The client's choices that need no node: which name an interface is described by."""

from __future__ import annotations

from dhost.client import exported_name


def test_the_described_name_is_the_one_the_node_announces() -> None:
    versioned = ["dhost:kv/store@1.0.0#get", "dhost:kv/store@1.0.0#put", "dhost:kv/admin#count"]
    assert exported_name("dhost:kv/store", versioned) == "dhost:kv/store@1.0.0"
    assert exported_name("dhost:kv/store@1.0.0", versioned) == "dhost:kv/store@1.0.0"
    assert exported_name("dhost:kv/admin", versioned) == "dhost:kv/admin"
    assert exported_name("dhost:kv/other", versioned) is None
    # A prefix of another interface's name is not that interface.
    assert exported_name("dhost:kv/st", versioned) is None
    # Two versions: the node is asked by the name as given.
    both = ["a:b/c@1.0.0#f", "a:b/c@2.0.0#f"]
    assert exported_name("a:b/c", both) is None
    assert exported_name("a:b/c@2.0.0", both) == "a:b/c@2.0.0"
    # An exact, unversioned export wins over versions.
    assert exported_name("a:b/c", both + ["a:b/c#f"]) == "a:b/c"
