//! Secrets read from the user's files (a broker's or a camera's password): a type whose `Debug`
//! never shows them, so that no log or config dump does.

/// A password: never printed (its `Debug` says `Password(***)`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_hides_the_password() {
        let p = super::Password("hunter2".into());
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
