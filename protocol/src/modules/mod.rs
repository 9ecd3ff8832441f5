//! Published modules, the protocol's side: a module's SHA-256 digest ([`digest`]), which
//! module runs under a name and its CBOR form ([`publication`]), and what a node knows of
//! each published name and what it should fetch ([`catalog`]). The node's side (the store,
//! transfers, loading, the service) is `dhost::modules`; docs/modules.md is the reference.

pub mod catalog;
pub mod digest;
pub mod publication;

pub use catalog::Catalog;
pub use digest::Digest;
pub use publication::Publication;

/// The longest module name.
pub const MAX_NAME: usize = 64;

/// The most publications a node runs, and announces.
pub const MAX_MODULES: usize = 32;

/// Checks a module name: 1 to [`MAX_NAME`] ASCII letters, digits, `-`, `_` or `.`, not
/// starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a module name (1 to {MAX_NAME} ASCII letters, digits, `-`, `_` or `.`, \
             not starting with `.` or `-`)",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_checked() {
        for good in ["kv", "chat-2", "a.b_c", &"x".repeat(MAX_NAME)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
