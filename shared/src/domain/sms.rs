//! Texting one-time codes: the `CodeSender` port, its SNS adapter, and an in-memory one for
//! unit tests. Neither logs the code or the full number.

use async_trait::async_trait;

use crate::domain::phone::PhoneNumber;

/// The whole text of a code SMS (API.md "Mail and SMS content").
pub fn code_message(code: &str) -> String {
    format!("Your verification code is {code}")
}

/// The provider did not take the message. The text never holds the number or the code.
#[derive(Debug, thiserror::Error)]
#[error("SMS not sent: {0}")]
pub struct SendError(pub String);

#[async_trait]
pub trait CodeSender: Send + Sync {
    /// Texts [`code_message`] to `to`.
    async fn send_code(&self, to: &PhoneNumber, code: &str) -> Result<(), SendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_exactly_the_code_sentence() {
        assert_eq!(code_message("123456"), "Your verification code is 123456");
    }
}
