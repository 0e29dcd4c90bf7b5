//! Email verification: a mailed single-use link for the user's current address (256-bit token,
//! stored only as its SHA-256, valid 24 h) that sets `emailVerified`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::Duration;

use crate::ApiError;
use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::email_token::{EmailToken, TokenKind};
use crate::domain::mail::Mail;
use crate::domain::mail::Mailer;
use crate::domain::security_event::Cause;
use crate::domain::user::User;
use crate::security::crypto;
use crate::service::users;

pub const TOKEN_LIFETIME: Duration = Duration::hours(24);

/// What stays unescaped in the email path segment of the link: unreserved characters and `@`.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// Verification mails per user and per address within [`MAIL_WINDOW`].
pub const MAILS_PER_WINDOW: usize = 3;
pub const MAIL_WINDOW: Duration = Duration::hours(1);

/// Mails a verification link for the user's current email, unless 3 verification mails went
/// to the user, or to the address, within the hour: then nothing is sent and the caller
/// answers the same. The link opens `GET /users/verify-email/{email}?token=…` directly. Used
/// by `POST /users/verify-email` and by an email change.
pub async fn send_verification_email(
    core: &Core,
    mailer: &dyn Mailer,
    user: &User,
) -> Result<(), ApiError> {
    let token = crypto::random_token();
    let email_key = user.email_key();
    let stored = EmailToken {
        kind: TokenKind::Verification,
        hash: crypto::sha256_hex(&token),
        user_id: user.id,
        email_key: email_key.clone(),
        session_epoch: user.session_epoch,
        expires_at: core.clock.now() + TOKEN_LIFETIME,
    };
    if !store_within_caps(core, &stored).await? {
        tracing::info!(user = %user.id, "verification mail cap reached; nothing sent");
        return Ok(());
    }
    let link = format!(
        "{}/users/verify-email/{}?token={token}",
        core.config.link_base_url,
        utf8_percent_encode(&user.email, PATH_SEGMENT)
    );
    mailer
        .send(&Mail::verification(&user.email, &link, TOKEN_LIFETIME))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(user = %user.id, "verification mail sent");
    Ok(())
}

/// Stores the token with both caps counting its mail, in one transaction (retried on a
/// concurrent mail); `false`, and nothing stored, when either cap is reached.
async fn store_within_caps(core: &Core, token: &EmailToken) -> Result<bool, ApiError> {
    for _ in 0..10 {
        let now = core.clock.now();
        let mut logs = core
            .tokens
            .get_verification_logs(token.user_id, &token.email_key)
            .await?;
        for sent_at in [&mut logs.by_user, &mut logs.by_address] {
            sent_at.retain(|at| now - *at < MAIL_WINDOW);
            if sent_at.len() >= MAILS_PER_WINDOW {
                return Ok(false);
            }
            sent_at.push(now);
        }
        match core.tokens.put_verification_token(token, &logs).await {
            Ok(()) => return Ok(true),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal(
        "verification mail caps kept conflicting",
    ))
}

/// Uses the token mailed to `email` and marks that email verified, in one transaction with
/// its `email.verified` event (of concurrent uses exactly one succeeds). 400 "The token is expired." for an unknown, expired,
/// used or mismatched token or one mailed to an address the user no longer has;
/// 400 "Cannot verify email for inactive user." when the user was deactivated since.
pub async fn verify(core: &Core, email: &str, token: &str) -> Result<User, ApiError> {
    let hash = EmailToken::hash_of(token).ok_or(ApiError::VerificationTokenExpired)?;
    let email_key = email.trim().to_lowercase();
    for _ in 0..5 {
        let now = core.clock.now();
        let stored = core
            .tokens
            .get_token(TokenKind::Verification, &hash)
            .await?
            .filter(|stored| stored.expires_at > now && stored.email_key == email_key)
            .ok_or(ApiError::VerificationTokenExpired)?;
        let previous = users::find_live(core, stored.user_id)
            .await?
            .filter(|user| user.email_key() == stored.email_key)
            .ok_or(ApiError::VerificationTokenExpired)?;
        if !previous.is_active() {
            return Err(ApiError::CannotVerifyInactive);
        }
        let mut user = previous.clone();
        user.email_verified = true;
        user.version = previous.version + 1;
        user.updated_at = now;
        // `email.verified`, by the user holding the link.
        let events = Cause::user(user.id).events(&previous, &user, now);
        match core
            .tokens
            .redeem_token(
                TokenKind::Verification,
                &hash,
                now,
                &user,
                &previous,
                &events,
            )
            .await
        {
            Ok(()) => return Ok(user),
            Err(StoreError::NotFound) => return Err(ApiError::VerificationTokenExpired),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::VersionConflict)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::App;
    use crate::domain::email::Email;
    use crate::notify::memory::MemoryMailer;
    use crate::security::password::Password;
    use crate::service::users::{NewUser, register};

    #[tokio::test]
    async fn the_link_escapes_the_email_and_verifies_it_once() {
        let mut app = App::in_memory();
        let mailer = Arc::new(MemoryMailer::new());
        app.mailer = mailer.clone();
        let new = NewUser {
            email: Email::parse("o'hara+bots@example.com").unwrap(),
            password: Password::parse("correct horse").unwrap(),
            first_name: None,
            last_name: None,
            full_name: None,
            marketing_opt_in: false,
        };
        let user = register(&app, new).await.unwrap();
        send_verification_email(&app, &*app.mailer, &user)
            .await
            .unwrap();

        let mail = &mailer.sent()[0];
        let prefix = format!(
            "{}/users/verify-email/o%27hara%2Bbots@example.com?token=",
            app.config.link_base_url
        );
        let (_, rest) = mail
            .text
            .split_once(&prefix)
            .expect("link in the text part");
        let token = rest.split_whitespace().next().unwrap();
        assert!(mail.html.contains(&format!("{prefix}{token}")));

        let verified = verify(&app, "O'Hara+Bots@example.com", token)
            .await
            .unwrap();
        assert!(verified.email_verified);
        assert!(matches!(
            verify(&app, &user.email, token).await,
            Err(ApiError::VerificationTokenExpired)
        ));
    }

    #[tokio::test]
    async fn three_mails_an_hour_per_user_then_nothing_is_sent() {
        let mut app = App::in_memory();
        let mailer = Arc::new(MemoryMailer::new());
        app.mailer = mailer.clone();
        let new = NewUser {
            email: Email::parse("capped@example.com").unwrap(),
            password: Password::parse("correct horse").unwrap(),
            first_name: None,
            last_name: None,
            full_name: None,
            marketing_opt_in: false,
        };
        let user = register(&app, new).await.unwrap();
        for _ in 0..5 {
            send_verification_email(&app, &*app.mailer, &user)
                .await
                .unwrap();
        }
        assert_eq!(mailer.sent().len(), 3);
        app.clock.advance(MAIL_WINDOW);
        send_verification_email(&app, &*app.mailer, &user)
            .await
            .unwrap();
        assert_eq!(mailer.sent().len(), 4);
    }
}
