//! The dhost key-value store, the example of calls with replies: serves `store` (`put`,
//! `get`, `keys`) from a map in its memory, and `admin`, whose `crash` traps on purpose to
//! show a remote trap reaching the caller as an error value, and whose `fetch` copies a key
//! from another node's store with a call with a reply.

wit_bindgen::generate!({
    world: "dhost:kv/kv-guest",
    path: ["../../wit/node", "../../wit/kv"],
    // `admin` uses `call-error` from `dstc:node/calls`: generate that interface here too.
    with: { "dstc:node/calls": generate },
});

use dhost::kv::store as remote;
use dstc::node::calls;
use exports::dhost::kv::{admin, store};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// The store: a sorted map, so `keys` comes out sorted.
static STORE: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn store() -> MutexGuard<'static, BTreeMap<String, String>> {
    STORE.lock().unwrap_or_else(|e| e.into_inner())
}

struct Kv;

impl store::Guest for Kv {
    fn put(key: String, value: String) {
        store().insert(key, value);
    }

    fn get(key: String) -> Option<String> {
        store().get(&key).cloned()
    }

    fn keys() -> Vec<String> {
        store().keys().cloned().collect()
    }
}

impl admin::Guest for Kv {
    fn crash(reason: String) -> Result<String, String> {
        panic!("kv: crashing, as asked: {reason}");
    }

    fn count() -> Result<u32, admin::CallError> {
        Ok(u32::try_from(store().len()).unwrap_or(u32::MAX))
    }

    fn fetch(node: String, key: String) -> Result<Option<String>, String> {
        calls::set_target(Some(&node));
        let value = remote::get(&key);
        calls::set_target(None);
        if let Some(value) = &value {
            store().insert(key, value.clone());
        }
        Ok(value)
    }
}

export!(Kv);
