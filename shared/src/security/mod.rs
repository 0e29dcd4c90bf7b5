//! Security primitives: password hashing, access tokens, small cryptographic helpers, and
//! authenticator-app codes.

pub mod crypto;
pub mod jwt;
pub mod password;
pub mod totp;
