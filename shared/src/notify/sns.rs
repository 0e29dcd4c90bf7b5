//! The `CodeSender` on SNS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::error::SdkError;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::domain::phone::PhoneNumber;
use crate::domain::sms::{CodeSender, SendError, code_message};

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
