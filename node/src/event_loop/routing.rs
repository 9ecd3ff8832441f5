//! The routing table: which local guest serves each function id, whether a guest admits a
//! caller, and which guest runs a call with a reply. Pure state, with no thread or socket,
//! so that the rules can be tested alone; the event loop ([`super`]) keeps it up to date
//! as guests come and go, and acts on its answers.

use dhost_protocol::outcome::{CallFailure, FailureKind};
use dhost_runtime::jail::Jail;
use std::collections::HashMap;

/// An exported function of a local guest: the guest's slot in the node and the function's
/// export slot in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// The guest's slot.
    pub guest: usize,
    /// The function's export slot.
    pub export: usize,
}

/// What the routing needs to know of a guest.
pub(crate) trait Routable {
    /// Its name.
    fn name(&self) -> &str;
    /// The ids of the functions it exports, in export slot order.
    fn function_ids(&self) -> impl Iterator<Item = &str>;
    /// What it is granted (its `serve` list admits callers).
    fn jail(&self) -> &Jail;
    /// Whether it cannot take calls now (waiting to restart, or unloaded).
    fn is_down(&self) -> bool;
    /// Whether it waits for the reply to a call of its own.
    fn is_waiting(&self) -> bool;
}

/// Which local guest serves each function.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoutingTable {
    /// By function id.
    routes: HashMap<String, Vec<Route>>,
    /// By bare name (the part after `#`), for calls from C plugins, which know no
    /// interface.
    bare: HashMap<String, Vec<Route>>,
}

impl RoutingTable {
    /// The table of `guests`, by slot (an empty slot serves nothing).
    pub(crate) fn new<G: Routable>(guests: &[Option<G>]) -> Self {
        let mut routes: HashMap<String, Vec<Route>> = HashMap::new();
        for (g, guest) in guests.iter().enumerate() {
            let Some(guest) = guest else { continue };
            for (export, id) in guest.function_ids().enumerate() {
                routes
                    .entry(id.to_string())
                    .or_default()
                    .push(Route { guest: g, export });
            }
        }
        let mut bare: HashMap<String, Vec<Route>> = HashMap::new();
        for (id, targets) in &routes {
            if let Some((_, name)) = id.rsplit_once('#') {
                bare.entry(name.to_string()).or_default().extend(targets);
            }
        }
        RoutingTable { routes, bare }
    }

    /// The exports that serve `function`: by id, or, for a bare id (from a C plugin), by
    /// name.
    pub(crate) fn targets(&self, function: &str) -> Option<&[Route]> {
        match self.routes.get(function) {
            Some(targets) => Some(targets),
            None if !function.contains('#') => self.bare.get(function).map(Vec::as_slice),
            None => None,
        }
    }

    /// Every function id some guest serves, with its exports.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &[Route])> {
        self.routes.iter().map(|(id, r)| (id, r.as_slice()))
    }

    /// The routes of `function` whose guest admits `caller` now, and what refused it (the
    /// last refusal, and how many there were).
    pub(crate) fn admitted<G: Routable>(
        &self,
        guests: &[Option<G>],
        function: &str,
        caller: Option<&str>,
    ) -> (Vec<Route>, Option<(CallFailure, usize)>) {
        let mut refused: Option<(CallFailure, usize)> = None;
        let mut admitted = Vec::new();
        for &route in self.targets(function).unwrap_or_default() {
            match admit(slot(guests, route), function, caller) {
                Ok(()) => admitted.push(route),
                Err(failure) => {
                    let n = refused.as_ref().map_or(0, |(_, n)| *n);
                    refused = Some((failure, n + 1));
                }
            }
        }
        (admitted, refused)
    }

    /// The export that runs a call with a reply to `function` from `caller`: the first
    /// guest that serves it and admits the caller, preferring one that does not wait for a
    /// reply of its own (the call may be the one it waits for: nodes whose guests call
    /// each other). `Ok(None)`: no guest serves it.
    pub(crate) fn server<G: Routable>(
        &self,
        guests: &[Option<G>],
        function: &str,
        caller: Option<&str>,
    ) -> Result<Option<Route>, CallFailure> {
        let Some(targets) = self.targets(function) else {
            return Ok(None);
        };
        let (mut waiting, mut refused) = (None, None);
        for &route in targets {
            let guest = slot(guests, route);
            match admit(guest, function, caller) {
                Ok(()) if !guest.is_some_and(Routable::is_waiting) => return Ok(Some(route)),
                Ok(()) => waiting = waiting.or(Some(route)),
                Err(failure) => refused = Some(failure),
            }
        }
        match (waiting, refused) {
            (Some(route), _) => Ok(Some(route)),
            (None, Some(failure)) => Err(failure),
            (None, None) => Ok(None),
        }
    }
}

/// The guest a route names, if its slot still holds one.
fn slot<G>(guests: &[Option<G>], route: Route) -> Option<&G> {
    guests.get(route.guest)?.as_ref()
}

/// Whether `guest` may run a call to `function` from node `caller` (its name, if it
/// announced one) now: it is loaded, not waiting to restart, and its jail's `serve` list
/// lets the caller in.
pub(crate) fn admit<G: Routable>(
    guest: Option<&G>,
    function: &str,
    caller: Option<&str>,
) -> Result<(), CallFailure> {
    let Some(guest) = guest else {
        return Err(CallFailure::new(
            FailureKind::Unavailable,
            "its guest was unloaded after failing too often",
        ));
    };
    let name = guest.name();
    if guest.is_down() {
        return Err(CallFailure::new(
            FailureKind::Unavailable,
            format!(
                "guest {name} takes no calls now (it is waiting to restart, or running its command)"
            ),
        ));
    }
    if !guest.jail().may_serve(function, caller) {
        let caller = caller.unwrap_or("a node that has not announced itself");
        return Err(CallFailure::new(
            FailureKind::Refused,
            format!("the jail of guest {name} does not let {caller} call it (its `serve` list)"),
        ));
    }
    Ok(())
}

/// The function ids a node serves, sorted: its guests' (`table`), its native plugins'
/// (`native`), and the mailbox functions if it serves mailboxes.
pub(crate) fn served(
    table: &RoutingTable,
    native: impl IntoIterator<Item = String>,
    mailboxes: bool,
) -> Vec<String> {
    let mailboxes = [
        dhost_mailbox::functions::READ_FUNCTION,
        dhost_mailbox::functions::WRITE_FUNCTION,
    ]
    .into_iter()
    .filter(|_| mailboxes)
    .map(str::to_string);
    let mut served: Vec<String> = table
        .routes
        .keys()
        .cloned()
        .chain(native)
        .chain(mailboxes)
        .collect();
    served.sort();
    served.dedup();
    served
}

#[cfg(test)]
mod tests {
    use super::super::fake_guest::guest;
    use super::*;

    const GET: &str = "dhost:kv/store#get";
    const PUT: &str = "dhost:kv/store#put";

    #[test]
    fn functions_route_by_id_and_plugins_by_bare_name() {
        let guests = vec![guest("kv", &[PUT, GET]), None, guest("kv-2", &[GET])];
        let table = RoutingTable::new(&guests);
        let route = |guest, export| Route { guest, export };
        assert_eq!(table.targets(PUT), Some(&[route(0, 0)][..]));
        let mut get = table.targets(GET).unwrap().to_vec();
        get.sort_by_key(|r| r.guest);
        assert_eq!(get, [route(0, 1), route(2, 0)]);
        // A C plugin names a function without its interface.
        assert_eq!(table.targets("put"), Some(&[route(0, 0)][..]));
        // An id with an interface never falls back to the bare name.
        assert_eq!(table.targets("other:pkg/iface#put"), None);
        let served = served(&table, ["raw:chat".to_string()], true);
        assert!(served.windows(2).all(|w| w[0] < w[1]), "{served:?}");
        let read = dhost_mailbox::functions::READ_FUNCTION;
        let write = dhost_mailbox::functions::WRITE_FUNCTION;
        for id in [GET, PUT, "raw:chat", read, write] {
            assert!(served.iter().any(|s| s == id), "{id} in {served:?}");
        }
        assert_eq!(served.len(), 5);
    }

    #[test]
    fn a_guest_down_or_whose_jail_refuses_the_caller_is_not_admitted() {
        let mut guests = vec![guest("kv", &[GET]), guest("kv-2", &[GET])];
        guests[0].as_mut().unwrap().down = true;
        guests[1].as_mut().unwrap().jail.serve = Some(vec![format!("{GET} from ann")]);
        let table = RoutingTable::new(&guests);
        let (admitted, refused) = table.admitted(&guests, GET, Some("bob"));
        assert!(admitted.is_empty());
        let (failure, n) = refused.unwrap();
        assert_eq!(n, 2);
        assert_eq!(failure.kind, FailureKind::Refused);
        assert!(
            failure
                .message
                .contains("the jail of guest kv-2 does not let bob call it"),
            "{failure}"
        );
        let (admitted, _) = table.admitted(&guests, GET, Some("ann"));
        assert_eq!(
            admitted,
            [Route {
                guest: 1,
                export: 0
            }]
        );
        let failure = table.server(&guests, GET, None).unwrap_err();
        assert!(
            failure
                .message
                .contains("a node that has not announced itself")
        );
        let down = admit(guests[0].as_ref(), GET, Some("ann")).unwrap_err();
        assert_eq!(down.kind, FailureKind::Unavailable);
        assert!(down.message.contains("guest kv takes no calls now"));
    }

    #[test]
    fn a_call_with_a_reply_prefers_a_guest_that_is_not_waiting_for_one() {
        let mut guests = vec![guest("kv", &[GET]), guest("kv-2", &[GET])];
        let table = RoutingTable::new(&guests);
        let first = table.server(&guests, GET, Some("ann")).unwrap().unwrap();
        assert_eq!(first.guest, 0);
        guests[0].as_mut().unwrap().waiting = true;
        let other = table.server(&guests, GET, Some("ann")).unwrap().unwrap();
        assert_eq!(other.guest, 1);
        // When every guest waits, the call still goes to one (it waits in its queue).
        guests[1].as_mut().unwrap().waiting = true;
        let any = table.server(&guests, GET, Some("ann")).unwrap().unwrap();
        assert_eq!(any.guest, 0);
        assert_eq!(table.server(&guests, "dhost:kv/store#keys", None), Ok(None));
    }
}
