"""The dhost key-value store in Python, the same store as guests/kv (Rust) on the
`dhost:kv/kv-guest` world (wit/kv/kv.wit): `store` from a dict in memory; `admin`, whose
`crash` traps on purpose (the caller gets the trap as an error value) and whose `fetch`
copies a key from another node's store with a call with a reply; and `entries`, whose
`find` takes and returns records, variants, enums and flags.

Built by scripts/build-guests.sh with componentize-py into target/guests/kv-py.wasm.
"""

from componentize_py_types import Err

from wit_world import exports
from wit_world.exports import entries
from wit_world.imports import calls
from wit_world.imports import store as remote

# The store.
STORE: dict[str, str] = {}


class Store(exports.Store):
    def put(self, key: str, value: str) -> None:
        STORE[key] = value

    def get(self, key: str) -> str | None:
        return STORE.get(key)

    def keys(self) -> list[str]:
        return sorted(STORE)


class Admin(exports.Admin):
    def crash(self, reason: str) -> str:
        # Not an `Err`: any other exception leaving an export traps the guest.
        raise RuntimeError(f"kv-py: crashing, as asked: {reason}")

    def count(self) -> int:
        return len(STORE)

    def fetch(self, node: str, key: str) -> str | None:
        calls.set_target(node)
        try:
            value = remote.get(key)
        finally:
            calls.set_target(None)
        if value is not None:
            STORE[key] = value
        return value


def is_number(value: str) -> bool:
    """Whether `value` reads as a 64-bit signed integer, as Rust's `str::parse::<i64>`."""
    digits = value[1:] if value[:1] in ("+", "-") else value
    return digits.isascii() and digits.isdigit() and -(2**63) <= int(value) < 2**63


class Entries(exports.Entries):
    def find(
        self, query: entries.Query, limit: int, detail: entries.Detail
    ) -> list[entries.Entry]:
        keys = sorted(STORE)
        match query:
            case entries.Query_Key(key):
                found = [key] if key in STORE else []
            case entries.Query_Prefix(""):
                raise Err(entries.FindError_EmptyPrefix())
            case entries.Query_Prefix(prefix):
                found = [k for k in keys if k.startswith(prefix)]
            case entries.Query_Range((start, end)):
                found = [k for k in keys if start <= k < end]
            case _:
                found = keys
        if len(found) > limit:
            raise Err(entries.FindError_TooMany(len(found)))
        return [
            entries.Entry(
                key=k,
                value=STORE[k] if entries.Detail.WITH_VALUE in detail else None,
                length=len(STORE[k].encode())
                if entries.Detail.WITH_LENGTH in detail
                else 0,
                encoding=entries.Encoding.NUMBER
                if is_number(STORE[k])
                else entries.Encoding.TEXT,
            )
            for k in found
        ]
