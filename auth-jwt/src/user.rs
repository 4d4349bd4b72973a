//! Who is calling, as the token says.

use std::collections::BTreeSet;

/// A role from the token's `roles` claim. No hierarchy: ADMIN does not imply USER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// `admin`
    Admin,
    /// `librarian`
    Librarian,
    /// `user`
    User,
}

impl Role {
    /// Parses a role name, case-insensitively; unknown roles are ignored (`None`).
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "librarian" => Some(Role::Librarian),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    /// The claim's spelling (lowercase).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Librarian => "librarian",
            Role::User => "user",
        }
    }
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// `sub`: the patron's id for self-access checks.
    pub sub: String,
    /// `username`, for logs.
    pub username: Option<String>,
    /// `roles`, parsed.
    pub roles: BTreeSet<Role>,
}

impl CurrentUser {
    /// Whether the token grants `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}
