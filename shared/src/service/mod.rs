//! Services: the use cases behind the routes. Each takes the ports it uses and returns domain
//! types; route groups turn them into bodies.

pub mod lockout;
pub mod notices;
pub mod paging;
#[cfg(feature = "passkeys")]
pub mod passkeys;
pub mod recovery;
pub mod reports;
pub mod second_factor;
pub mod security_events;
pub mod sessions;
pub mod totp;
pub mod two_factor;
pub mod user_listing;
pub mod users;
pub mod verification;
