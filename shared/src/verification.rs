//! Email verification: a mailed single-use link for the user's current address (256-bit token,
//! stored only as its SHA-256, valid 24 h) that sets `emailVerified`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::Duration;

use crate::crypto;
use crate::mail::Mail;
use crate::store::{EmailToken, StoreError, TokenKind};
use crate::user::User;
use crate::{ApiError, App, users};

pub const TOKEN_LIFETIME: Duration = Duration::hours(24);

/// What stays unescaped in the email path segment of the link: unreserved characters and `@`.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// Mails a verification link for the user's current email. The link opens
/// `GET /users/verify-email/{email}?token=…` directly. Used by `POST /users/verify-email` and
/// by an email change.
pub async fn send_verification_email(app: &App, user: &User) -> Result<(), ApiError> {
    let token = crypto::random_token();
    app.tokens
        .put_token(&EmailToken {
            kind: TokenKind::Verification,
            hash: crypto::sha256_hex(&token),
            user_id: user.id,
            email_key: user.email_key(),
            session_epoch: user.session_epoch,
            expires_at: app.clock.now() + TOKEN_LIFETIME,
        })
        .await?;
    let link = format!(
        "{}/users/verify-email/{}?token={token}",
        app.config.link_base_url,
        utf8_percent_encode(&user.email, PATH_SEGMENT)
    );
    app.mailer
        .send(&Mail::verification(&user.email, &link, TOKEN_LIFETIME))
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(user = %user.id, "verification mail sent");
    Ok(())
}

/// Uses the token mailed to `email` and marks that email verified, in one transaction (of
/// concurrent uses exactly one succeeds). 400 "The token is expired." for an unknown, expired,
/// used or mismatched token or one mailed to an address the user no longer has;
/// 400 "Cannot verify email for inactive user." when the user was deactivated since.
pub async fn verify(app: &App, email: &str, token: &str) -> Result<User, ApiError> {
    let hash = EmailToken::hash_of(token).ok_or(ApiError::VerificationTokenExpired)?;
    let email_key = email.trim().to_lowercase();
    for _ in 0..5 {
        let now = app.clock.now();
        let stored = app
            .tokens
            .get_token(TokenKind::Verification, &hash)
            .await?
            .filter(|stored| stored.expires_at > now && stored.email_key == email_key)
            .ok_or(ApiError::VerificationTokenExpired)?;
        let previous = users::find_live(app, stored.user_id)
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
        match app
            .tokens
            .redeem_token(TokenKind::Verification, &hash, now, &user, &previous)
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
    use crate::email::Email;
    use crate::mail::MemoryMailer;
    use crate::password::Password;
    use crate::users::{NewUser, register};

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
        send_verification_email(&app, &user).await.unwrap();

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
}
