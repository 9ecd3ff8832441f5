//! Which mailboxes a guest may read and write (`dstc:node/mailboxes`), on this node and on
//! which peers: the jail's `mailboxes` list, entries such as `0-3`, `7:rw`, `*@alpha` or
//! `*@*:rw`.

use std::fmt;
use std::str::FromStr;

/// The mailbox numbers an entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbers {
    /// Every mailbox (`*`).
    All,
    /// From the first to the last, inclusive (`N` or `N-M`).
    Range(u32, u32),
}

/// The nodes an entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Nodes {
    /// This node alone (no `@`).
    This,
    /// Any node, this one included (`@*`).
    Any,
    /// The node of that name (`@NAME`).
    Named(String),
}

/// One entry of a jail's `mailboxes` list: `NUMBERS[@NODE][:ro|rw]`, where `NUMBERS` is
/// `*`, `N` or `N-M`, `NODE` a node's name or `*` (any node; without it, this node only),
/// and the mode read-only unless `rw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxGrant {
    numbers: Numbers,
    nodes: Nodes,
    writable: bool,
}

impl MailboxGrant {
    /// Every mailbox of every node, to read and write (`*@*:rw`).
    pub fn everything() -> Self {
        MailboxGrant {
            numbers: Numbers::All,
            nodes: Nodes::Any,
            writable: true,
        }
    }

    /// Whether the entry lets a guest on node `this_node` read (or, if `write`, write)
    /// mailbox `number` of node `node` (`None`: this node).
    pub fn permits(&self, number: u32, node: Option<&str>, this_node: &str, write: bool) -> bool {
        let numbers = match self.numbers {
            Numbers::All => true,
            Numbers::Range(first, last) => (first..=last).contains(&number),
        };
        let local = node.is_none_or(|n| n == this_node);
        let nodes = match &self.nodes {
            Nodes::This => local,
            Nodes::Any => true,
            Nodes::Named(name) => node.unwrap_or(this_node) == name,
        };
        numbers && nodes && (self.writable || !write)
    }
}

impl FromStr for MailboxGrant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{s}` is not NUMBERS[@NODE][:ro|rw]: {why}");
        let (rest, writable) = match s.rsplit_once(':') {
            Some((rest, "rw")) => (rest, true),
            Some((rest, "ro")) => (rest, false),
            Some(_) => return Err(bad("the mode is ro or rw")),
            None => (s, false),
        };
        let (numbers, nodes) = match rest.split_once('@') {
            None => (rest, Nodes::This),
            Some((numbers, "*")) => (numbers, Nodes::Any),
            Some((numbers, name)) => {
                if name.contains(char::is_whitespace) {
                    return Err(bad("a node name has no spaces or control characters"));
                }
                if !dhost_protocol::wire::is_node_name(name) {
                    return Err(bad("a node name has 1 to 255 bytes of printable text"));
                }
                (numbers, Nodes::Named(name.to_string()))
            }
        };
        let number = |n: &str| {
            n.parse::<u32>()
                .map_err(|_| bad("a mailbox number is a whole number from 0"))
        };
        let numbers = match numbers {
            "*" => Numbers::All,
            n => match n.split_once('-') {
                None => {
                    let n = number(n)?;
                    Numbers::Range(n, n)
                }
                Some((first, last)) => {
                    let (first, last) = (number(first)?, number(last)?);
                    if first > last {
                        return Err(bad("a range goes from the lower number to the higher"));
                    }
                    Numbers::Range(first, last)
                }
            },
        };
        Ok(MailboxGrant {
            numbers,
            nodes,
            writable,
        })
    }
}

impl fmt::Display for MailboxGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.numbers {
            Numbers::All => write!(f, "*")?,
            Numbers::Range(a, b) if a == b => write!(f, "{a}")?,
            Numbers::Range(a, b) => write!(f, "{a}-{b}")?,
        }
        match &self.nodes {
            Nodes::This => {}
            Nodes::Any => write!(f, "@*")?,
            Nodes::Named(name) => write!(f, "@{name}")?,
        }
        write!(f, ":{}", if self.writable { "rw" } else { "ro" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(s: &str) -> MailboxGrant {
        s.parse().unwrap()
    }

    #[test]
    fn entries_grant_numbers_nodes_and_modes() {
        let here = "alpha";
        let local = grant("0-3");
        assert!(
            local.permits(0, None, here, false) && local.permits(3, Some("alpha"), here, false)
        );
        assert!(!local.permits(4, None, here, false), "outside the range");
        assert!(!local.permits(1, None, here, true), "read-only by default");
        assert!(
            !local.permits(1, Some("beta"), here, false),
            "this node only"
        );

        let beta = grant("7@beta:rw");
        assert!(beta.permits(7, Some("beta"), here, true));
        assert!(!beta.permits(7, None, here, false) && !beta.permits(6, Some("beta"), here, false));

        let anywhere = grant("*@*");
        assert!(anywhere.permits(u32::MAX, Some("gamma"), here, false));
        assert!(anywhere.permits(0, None, here, false));
        assert!(!anywhere.permits(0, None, here, true));
        assert!(MailboxGrant::everything().permits(9, Some("x"), here, true));
    }

    #[test]
    fn entries_print_as_they_parse() {
        for s in ["*:ro", "3:rw", "0-3@*:ro", "5@beta:rw"] {
            assert_eq!(grant(s).to_string(), s);
        }
        assert_eq!(grant("1").to_string(), "1:ro");
    }

    #[test]
    fn mistakes_are_named() {
        for (s, want) in [
            ("", "a mailbox number"),
            ("x", "a mailbox number"),
            ("3-1", "lower number to the higher"),
            ("1:wo", "the mode is ro or rw"),
            ("1@", "a node name has 1 to 255 bytes"),
            ("1@a b", "no spaces or control characters"),
            ("-1", "a mailbox number"),
        ] {
            let err = s.parse::<MailboxGrant>().unwrap_err();
            assert!(err.contains(want), "{s:?}: {err}");
        }
    }
}
