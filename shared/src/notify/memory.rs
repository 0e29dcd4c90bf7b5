//! In-memory notifiers for unit tests: they keep what was sent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::domain::mail::{Mail, MailError, Mailer};
use crate::domain::phone::PhoneNumber;
use crate::domain::sms::{CodeSender, SendError, code_message};

/// Keeps what was sent, for unit tests.
#[derive(Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Mail>>,
}

impl MemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every mail sent so far, oldest first.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        self.sent.lock().unwrap().push(mail.clone());
        Ok(())
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
