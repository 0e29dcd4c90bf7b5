//! Security primitives: password hashing, access tokens, and small cryptographic helpers.

pub mod crypto;
pub mod jwt;
pub mod password;
