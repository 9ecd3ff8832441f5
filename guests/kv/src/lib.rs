//! The dhost key-value store, the example of calls with replies: serves `store` (`put`,
//! `get`, `keys`) from a map in its memory; `admin`, whose `crash` traps on purpose to show
//! a remote trap reaching the caller as an error value, and whose `fetch` copies a key from
//! another node's store with a call with a reply; and `entries`, whose `find` takes and
//! returns WIT's records, variants, enums and flags.

wit_bindgen::generate!({
    world: "dhost:kv/kv-guest",
    path: ["../../wit/node", "../../wit/kv"],
    // `admin` uses `call-error` from `dstc:node/calls`: generate that interface here too.
    with: { "dstc:node/calls": generate },
});

use dhost::kv::store as remote;
use dstc::node::calls;
use exports::dhost::kv::{admin, entries, store};
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

impl entries::Guest for Kv {
    fn find(
        query: entries::Query,
        limit: u8,
        detail: entries::Detail,
    ) -> Result<Vec<entries::Entry>, entries::FindError> {
        use entries::Query;
        let store = store();
        let found: Vec<(&String, &String)> = match &query {
            Query::Key(key) => store.get_key_value(key).into_iter().collect(),
            Query::Prefix(prefix) if prefix.is_empty() => {
                return Err(entries::FindError::EmptyPrefix);
            }
            Query::Prefix(prefix) => store
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                .collect(),
            Query::Range((from, to)) if from < to => {
                store.range(from.clone()..to.clone()).collect()
            }
            Query::Range(_) => Vec::new(),
            Query::All => store.iter().collect(),
        };
        if found.len() > usize::from(limit) {
            return Err(entries::FindError::TooMany(
                u32::try_from(found.len()).unwrap_or(u32::MAX),
            ));
        }
        Ok(found
            .into_iter()
            .map(|(key, value)| entries::Entry {
                key: key.clone(),
                value: detail
                    .contains(entries::Detail::WITH_VALUE)
                    .then(|| value.clone()),
                length: if detail.contains(entries::Detail::WITH_LENGTH) {
                    u32::try_from(value.len()).unwrap_or(u32::MAX)
                } else {
                    0
                },
                encoding: if value.parse::<i64>().is_ok() {
                    entries::Encoding::Number
                } else {
                    entries::Encoding::Text
                },
            })
            .collect())
    }
}

export!(Kv);
