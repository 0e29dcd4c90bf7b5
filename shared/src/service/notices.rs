//! Security notices: the mails (no link, no token) that tell an account's address what just
//! happened to it. They are never capped, and sent after the change is saved: a notice that
//! fails is logged (without the address or the body), never answered as an error, since the
//! change stands either way.

use crate::domain::mail::{Mail, Mailer};
use crate::domain::user::User;

/// Sends `notice` about `user`'s account; a failure is logged, not returned.
pub async fn send(mailer: &dyn Mailer, user: &User, notice: Mail) {
    if let Err(error) = mailer.send(&notice).await {
        tracing::error!(user = %user.id, subject = %notice.subject, %error, "security notice not sent");
    }
}
