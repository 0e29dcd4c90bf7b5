//! Texting one-time codes: the `CodeSender` port, its SNS adapter, and an in-memory one for
//! unit tests. Neither logs the code or the full number.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::error::SdkError;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::phone::PhoneNumber;

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

/// SNS `Publish` straight to a phone number, as a transactional SMS.
pub struct SnsCodeSender {
    client: aws_sdk_sns::Client,
}

/// A hung provider gets the seed's 400 well before the function times out (10 s in
/// `template.yaml`), retries included.
const SNS_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

impl SnsCodeSender {
    /// An adapter on a client built from `config` (usually `Builder::from(&sdk_config)`),
    /// with an operation timeout added.
    pub fn new(config: aws_sdk_sns::config::Builder) -> Self {
        let timeouts = aws_sdk_sns::config::timeout::TimeoutConfig::builder()
            .operation_timeout(SNS_OPERATION_TIMEOUT)
            .build();
        let config = config.timeout_config(timeouts).build();
        Self {
            client: aws_sdk_sns::Client::from_conf(config),
        }
    }
}

#[async_trait]
impl CodeSender for SnsCodeSender {
    async fn send_code(&self, to: &PhoneNumber, code: &str) -> Result<(), SendError> {
        let sms_type = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|error| SendError(error.to_string()))?;
        self.client
            .publish()
            .phone_number(to.as_str())
            .message(code_message(code))
            .message_attributes("AWS.SNS.SMS.SMSType", sms_type)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| SendError(describe(&error)))
    }
}

/// What went wrong, without the provider's message text (which may quote the number).
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => format!(
            "SNS refused the message ({})",
            service.err().code().unwrap_or("no error code")
        ),
        SdkError::TimeoutError(_) => "SNS did not answer in time".to_owned(),
        SdkError::DispatchFailure(_) => "SNS could not be reached".to_owned(),
        SdkError::ResponseError(_) => "SNS sent an unreadable response".to_owned(),
        _ => "the SNS request could not be built".to_owned(),
    }
}

/// One text that [`MemoryCodeSender`] took.
#[derive(Clone, Debug, PartialEq)]
pub struct SentSms {
    pub to: PhoneNumber,
    pub message: String,
}

/// Records texts instead of sending them; can be told to fail like a provider outage.
#[derive(Default)]
pub struct MemoryCodeSender {
    sent: Mutex<Vec<SentSms>>,
    failing: AtomicBool,
}

impl MemoryCodeSender {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every text taken so far, oldest first.
    pub fn sent(&self) -> Vec<SentSms> {
        self.sent.lock().unwrap().clone()
    }

    /// The code of the latest text to `to`.
    pub fn last_code_to(&self, to: &str) -> Option<String> {
        let prefix = code_message("");
        self.sent()
            .into_iter()
            .rev()
            .find(|sms| sms.to.as_str() == to)
            .and_then(|sms| sms.message.strip_prefix(&prefix).map(str::to_owned))
    }

    /// From now on every send fails (`true`) or succeeds again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl CodeSender for MemoryCodeSender {
    async fn send_code(&self, to: &PhoneNumber, code: &str) -> Result<(), SendError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(SendError("the in-memory provider is set to fail".into()));
        }
        self.sent.lock().unwrap().push(SentSms {
            to: to.clone(),
            message: code_message(code),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_exactly_the_code_sentence() {
        assert_eq!(code_message("123456"), "Your verification code is 123456");
    }

    #[tokio::test]
    async fn memory_sender_records_texts_and_can_fail() {
        let sender = MemoryCodeSender::new();
        let to = PhoneNumber::parse_e164("+14155550123").unwrap();
        sender.send_code(&to, "123456").await.unwrap();
        assert_eq!(
            sender.last_code_to("+14155550123").as_deref(),
            Some("123456")
        );
        sender.set_failing(true);
        assert!(sender.send_code(&to, "654321").await.is_err());
        assert_eq!(sender.sent().len(), 1);
    }
}
