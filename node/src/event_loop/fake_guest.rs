//! A made-up guest for the tests of routing and of the core: its exports, jail, state and
//! the events it hears are fields a test sets.

use super::core::Guest;
use super::routing::Routable;
use dhost_runtime::guest::world::EventInterface;
use dhost_runtime::jail::Jail;

/// A guest as routing and the core see it, with every fact set by the test.
pub(crate) struct FakeGuest {
    /// Its name.
    pub(crate) name: &'static str,
    /// The function ids it exports, by export slot.
    pub(crate) ids: Vec<&'static str>,
    /// Its jail.
    pub(crate) jail: Jail,
    /// Whether it is down (waiting to restart, or unloaded).
    pub(crate) down: bool,
    /// Whether it waits for the reply to a call of its own.
    pub(crate) waiting: bool,
    /// The event interfaces it exports.
    pub(crate) hears: Vec<EventInterface>,
}

impl Routable for FakeGuest {
    fn name(&self) -> &str {
        self.name
    }
    fn function_ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().copied()
    }
    fn jail(&self) -> &Jail {
        &self.jail
    }
    fn is_down(&self) -> bool {
        self.down
    }
    fn is_waiting(&self) -> bool {
        self.waiting
    }
}

impl Guest for FakeGuest {
    fn hears(&self, events: EventInterface) -> bool {
        self.hears.contains(&events)
    }
    fn takes_stdin(&self) -> bool {
        self.jail.stdin
    }
}

/// A guest `name` exporting `ids`, up, not waiting, hearing no event, in a command-line
/// guest's jail.
pub(crate) fn guest(name: &'static str, ids: &[&'static str]) -> Option<FakeGuest> {
    Some(FakeGuest {
        name,
        ids: ids.to_vec(),
        jail: Jail::default_for(false),
        down: false,
        waiting: false,
        hears: Vec::new(),
    })
}
