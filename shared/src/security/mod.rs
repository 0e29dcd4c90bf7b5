//! Security primitives: password hashing and the common-password list, access tokens, small
//! cryptographic helpers, authenticator-app codes, recovery codes, and sealing secrets at rest.

pub mod common_passwords;
pub mod crypto;
pub mod jwt;
pub mod password;
pub mod recovery_codes;
pub mod secretbox;
pub mod totp;
