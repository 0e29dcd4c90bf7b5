//! Password recovery by email: a mailed single-use link carrying a 256-bit token (stored only
//! as its SHA-256, valid 1 h), at most 3 mails per address per hour, and a reset that sets the
//! password, uses the token up, ends every session and clears the login lockout.
//!
//! Nothing here tells a caller whether an account exists.

use time::{Duration, OffsetDateTime};

use crate::ApiError;
use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::email::Email;
use crate::domain::email_token::{EmailToken, MailLog, TokenKind};
use crate::domain::ids::UserId;
use crate::domain::mail::Mail;
use crate::domain::mail::Mailer;
use crate::domain::security_event::{Cause, EventType, SecurityEvent};
use crate::domain::user::User;
use crate::security::crypto;
use crate::security::password::Password;
use crate::service::{notices, users};

pub const TOKEN_LIFETIME: Duration = Duration::hours(1);
pub const MAILS_PER_WINDOW: usize = 3;
pub const MAIL_WINDOW: Duration = Duration::hours(1);

/// Where the mail goes when no active account has the address: the SES mailbox simulator,
/// which takes the mail like any other and delivers nothing (and counts it neither against
/// the sending quota nor in bounce or complaint rates).
pub const DECOY_RECIPIENT: &str = "success@simulator.amazonses.com";

/// Mails a recovery link when an active account has `email` and the address is under its
/// cap; otherwise does nothing the caller could see. The caller answers the same either way,
/// and both ways cost the same: a mail sent after the answer cannot be relied on in Lambda,
/// so an address without an active account makes the same requests, in the same order, as
/// one with: the claim and a user read, the address's cap, a token put (of a token nobody
/// holds, for no user) and an SES send (to [`DECOY_RECIPIENT`], with a link nobody can use).
pub async fn start(core: &Core, mailer: &dyn Mailer, email: &Email) -> Result<(), ApiError> {
    let email_key = email.normalized();
    let found = core.users.find_user_by_email(&email_key).await?;
    if found.is_none() {
        // The read a claim would have led to.
        core.users.get_user(UserId::new()).await?;
    }
    let user = found.filter(User::is_active);
    if !take_mail_slot(core, &email_key).await? {
        tracing::info!("recovery mail cap reached; nothing sent");
        return Ok(());
    }
    let token = crypto::random_token();
    let expires_at = core.clock.now() + TOKEN_LIFETIME;
    let link = format!("{}/reset-password?token={token}", core.config.link_base_url);
    let to = user
        .as_ref()
        .map_or(DECOY_RECIPIENT, |user| user.email.as_str());
    let mail = Mail::recovery(to, &link, TOKEN_LIFETIME);
    // The token is stored only once its mail went out, so a mail that failed leaves no
    // usable token behind.
    if let Err(error) = mailer.send(&mail).await {
        // Still a success for the caller: an error here would reveal that the account exists.
        tracing::error!(user = ?user.as_ref().map(|user| user.id), %error, "recovery mail not sent");
        return Ok(());
    }
    core.tokens
        .put_token(&EmailToken {
            kind: TokenKind::Recovery,
            hash: crypto::sha256_hex(&token),
            user_id: user.as_ref().map_or_else(UserId::new, |user| user.id),
            email_key,
            session_epoch: user.as_ref().map_or(0, |user| user.session_epoch),
            expires_at,
        })
        .await?;
    Ok(())
}

/// When a still-usable token expires; 400 "Token must be valid string" otherwise. Does not
/// use the token up.
pub async fn check(core: &Core, token: &str) -> Result<OffsetDateTime, ApiError> {
    let (stored, _) = usable(core, token)
        .await?
        .ok_or(ApiError::TokenMustBeValidString)?;
    Ok(stored.expires_at)
}

/// Sets the new password with the token, in one transaction with using the token up and its
/// events (`password.reset` and `sessions.ended`, by the user), so of concurrent resets with
/// one token exactly one succeeds. Ends every session of the user, clears the login lockout
/// and mails the user a notice. 400 "Token is invalid or expired." for an unusable token.
pub async fn reset(
    core: &Core,
    mailer: &dyn Mailer,
    token: &str,
    password: &Password,
) -> Result<(), ApiError> {
    if usable(core, token).await?.is_none() {
        return Err(ApiError::TokenInvalidOrExpired);
    }
    let password_hash = core
        .hasher
        .hash(password)
        .await
        .map_err(ApiError::internal)?;
    let hash = crypto::sha256_hex(token);
    for _ in 0..5 {
        let (_, previous) = usable(core, token)
            .await?
            .ok_or(ApiError::TokenInvalidOrExpired)?;
        let now = core.clock.now();
        let mut user = previous.clone();
        user.password_hash = password_hash.clone();
        users::revoke_all_sessions(&mut user);
        user.version = previous.version + 1;
        user.updated_at = now;
        let events = reset_events(&previous, &user, now);
        match core
            .tokens
            .redeem_token(TokenKind::Recovery, &hash, now, &user, &previous, &events)
            .await
        {
            Ok(()) => {
                core.lockouts.clear_lockout(&user.email_key()).await?;
                crate::service::second_factor::forgive(core, user.id).await?;
                tracing::info!(user = %user.id, "password reset by recovery link; sessions revoked");
                notices::send(mailer, &user, Mail::password_reset(&user.email)).await;
                return Ok(());
            }
            Err(StoreError::NotFound) => return Err(ApiError::TokenInvalidOrExpired),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::VersionConflict)
}

/// What a reset from `previous` to `user` did, by the user holding the link: the password
/// change is `password.reset`, and the sessions it ended `sessions.ended`.
fn reset_events(previous: &User, user: &User, now: OffsetDateTime) -> Vec<SecurityEvent> {
    Cause::user(user.id)
        .events(previous, user, now)
        .into_iter()
        .map(|mut event| {
            if event.kind == EventType::PasswordChanged {
                event.kind = EventType::PasswordReset;
            }
            event
        })
        .collect()
}

/// The stored token and its user, if the token can still reset the password: known, not
/// expired, and its user still active, at the same email and with the sessions of issue (a
/// reset, a password change or a deactivation ends every recovery token issued before).
async fn usable(core: &Core, token: &str) -> Result<Option<(EmailToken, User)>, ApiError> {
    let Some(hash) = EmailToken::hash_of(token) else {
        return Ok(None);
    };
    let Some(stored) = core.tokens.get_token(TokenKind::Recovery, &hash).await? else {
        return Ok(None);
    };
    if stored.expires_at <= core.clock.now() {
        return Ok(None);
    }
    let user = users::find_live(core, stored.user_id)
        .await?
        .filter(|user| {
            user.is_active()
                && user.email_key() == stored.email_key
                && user.session_epoch == stored.session_epoch
        });
    Ok(user.map(|user| (stored, user)))
}

/// Counts one recovery mail to the address if fewer than the cap went in the last hour.
async fn take_mail_slot(core: &Core, email_key: &str) -> Result<bool, ApiError> {
    for _ in 0..10 {
        let now = core.clock.now();
        let current = core.tokens.get_mail_log(email_key).await?;
        let expected = current.as_ref().map(|log| log.version);
        let mut sent_at: Vec<OffsetDateTime> = current
            .map(|log| log.sent_at)
            .unwrap_or_default()
            .into_iter()
            .filter(|at| *at > now - MAIL_WINDOW)
            .collect();
        if sent_at.len() >= MAILS_PER_WINDOW {
            return Ok(false);
        }
        sent_at.push(now);
        let log = MailLog {
            email_key: email_key.to_owned(),
            sent_at,
            version: expected.unwrap_or(0) + 1,
        };
        match core.tokens.put_mail_log(&log, expected).await {
            Ok(()) => return Ok(true),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::internal("recovery mail cap kept conflicting"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::App;
    use crate::notify::memory::MemoryMailer;
    use crate::service::users::{NewUser, register};

    async fn app_with_user() -> (App, Arc<MemoryMailer>, User) {
        let mut app = App::in_memory();
        let mailer = Arc::new(MemoryMailer::new());
        app.mailer = mailer.clone();
        let new = NewUser {
            email: Email::parse("Ada@Example.com").unwrap(),
            password: Password::parse("correct horse").unwrap(),
            first_name: None,
            last_name: None,
            full_name: None,
            marketing_opt_in: false,
        };
        let user = register(&app, new).await.unwrap();
        (app, mailer, user)
    }

    fn token_in(mail: &Mail) -> String {
        mail.text
            .split_once("?token=")
            .unwrap()
            .1
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn both_parts_carry_one_link_to_the_user_and_only_its_hash_is_stored() {
        let (app, mailer, user) = app_with_user().await;
        start(
            &app,
            &*app.mailer,
            &Email::parse("ada@EXAMPLE.com").unwrap(),
        )
        .await
        .unwrap();
        let sent = mailer.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, user.email);
        let token = token_in(&sent[0]);
        let link = format!("{}/reset-password?token={token}", app.config.link_base_url);
        assert!(sent[0].text.contains(&link) && sent[0].html.contains(&link));
        assert!(
            app.tokens
                .get_token(TokenKind::Recovery, &token)
                .await
                .unwrap()
                .is_none()
        );
        let stored = app
            .tokens
            .get_token(TokenKind::Recovery, &crypto::sha256_hex(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.user_id, user.id);
    }

    #[tokio::test]
    async fn the_cap_counts_only_mails_of_the_last_hour() {
        let (app, mailer, user) = app_with_user().await;
        let email = Email::parse(&user.email).unwrap();
        for _ in 0..3 {
            start(&app, &*app.mailer, &email).await.unwrap();
            app.clock.advance(Duration::minutes(19));
        }
        start(&app, &*app.mailer, &email).await.unwrap();
        assert_eq!(
            mailer.sent().len(),
            3,
            "the first mail is 57 minutes old, still counted"
        );
        app.clock.advance(Duration::minutes(4));
        start(&app, &*app.mailer, &email).await.unwrap();
        assert_eq!(mailer.sent().len(), 4);
    }

    #[tokio::test]
    async fn a_reset_stores_a_new_hash_and_revokes_every_session() {
        let (app, mailer, user) = app_with_user().await;
        start(&app, &*app.mailer, &Email::parse(&user.email).unwrap())
            .await
            .unwrap();
        let token = token_in(&mailer.sent()[0]);
        let password = Password::parse("battery staple").unwrap();
        reset(&app, &*app.mailer, &token, &password).await.unwrap();
        let saved = app.users.get_user(user.id).await.unwrap().unwrap();
        assert_eq!(saved.session_epoch, user.session_epoch + 1);
        assert_eq!(saved.version, user.version + 1);
        assert!(
            app.hasher
                .verify(&password, Some(&saved.password_hash))
                .await
        );
        assert!(matches!(
            reset(&app, &*app.mailer, &token, &password).await,
            Err(ApiError::TokenInvalidOrExpired)
        ));
    }
}
