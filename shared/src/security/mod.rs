//! Security primitives: password hashing, access tokens, small cryptographic helpers,
//! authenticator-app codes, recovery codes, and sealing secrets at rest.

pub mod crypto;
pub mod jwt;
pub mod password;
pub mod recovery_codes;
pub mod secretbox;
pub mod totp;
