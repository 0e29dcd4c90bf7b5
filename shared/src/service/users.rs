//! User lifecycle shared by the route groups: registration (also used by `cargo xtask admin`),
//! versioned saves and revoking every session.

use crate::ApiError;
use crate::app::Core;
use crate::domain::StoreError;
use crate::domain::email::Email;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::security_event::{Cause, EventType, SecurityEvent};
use crate::domain::user::{Role, Status, User};
use crate::security::password::Password;
use crate::service::lockout;

/// A validated registration.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub marketing_opt_in: bool,
}

/// Creates the user (email unique among live users). 409 "Email is already in use." otherwise.
pub async fn register(core: &Core, new: NewUser) -> Result<User, ApiError> {
    if core
        .users
        .find_user_by_email(&new.email.normalized())
        .await?
        .is_some()
    {
        return Err(ApiError::EmailTaken);
    }
    let password_hash = core
        .hasher
        .hash(&new.password)
        .await
        .map_err(ApiError::internal)?;
    let now = core.clock.now();
    let user = User {
        id: UserId::new(),
        email: new.email.as_str().to_owned(),
        email_verified: false,
        first_name: new.first_name,
        last_name: new.last_name,
        full_name: new.full_name,
        status: Status::Active,
        roles: Vec::new(),
        marketing_opt_in: new.marketing_opt_in,
        tos_agreed_at: Some(now),
        password_hash,
        version: 1,
        session_epoch: 0,
        mobile: None,
        pending_mobile: None,
        factors: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let registered = SecurityEvent::new(user.id, EventType::UserRegistered, now).by_self();
    core.users
        .create_user_recording(&user, &[registered])
        .await?;
    Ok(user)
}

/// A live (not deleted) user, or `None`.
pub async fn find_live(core: &Core, id: UserId) -> Result<Option<User>, ApiError> {
    Ok(core
        .users
        .get_user(id)
        .await?
        .filter(|user| user.status != Status::Deleted))
}

/// Applies `change` to the stored user and saves it if nobody wrote in between, retrying a
/// few times on a concurrent write. `change` may refuse with an error; it sees fresh data on
/// each try. Returns the saved user. Its security events have no known cause.
pub async fn update<F>(
    core: &Core,
    id: UserId,
    keep_session: Option<SessionId>,
    change: F,
) -> Result<User, ApiError>
where
    F: FnMut(&mut User) -> Result<(), ApiError>,
{
    update_by(core, id, keep_session, &Cause::default(), change).await
}

/// [`update`] on behalf of `cause`: the security events of what changed (`Cause::events`)
/// are written in the same transaction as the user.
pub async fn update_by<F>(
    core: &Core,
    id: UserId,
    keep_session: Option<SessionId>,
    cause: &Cause,
    mut change: F,
) -> Result<User, ApiError>
where
    F: FnMut(&mut User) -> Result<(), ApiError>,
{
    for _ in 0..5 {
        let previous = find_live(core, id).await?.ok_or(ApiError::UserNotFound)?;
        let mut user = previous.clone();
        change(&mut user)?;
        let now = core.clock.now();
        user.version = previous.version + 1;
        user.updated_at = now;
        let events = cause.events(&previous, &user, now);
        match core
            .users
            .save_user_recording(&user, &previous, keep_session, &events)
            .await
        {
            Ok(()) => return Ok(user),
            Err(StoreError::VersionConflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::VersionConflict)
}

/// Ends every session of the user at the next save (sessions live only at the user's epoch).
pub fn revoke_all_sessions(user: &mut User) {
    user.session_epoch += 1;
}

/// Creates a csrAdmin, or promotes (and re-passwords) the live user holding the email.
pub async fn create_or_promote_admin(
    core: &Core,
    email: &str,
    password: &str,
) -> Result<User, ApiError> {
    let email = Email::parse(email).map_err(|message| ApiError::field("email", message))?;
    let password =
        Password::parse(password).map_err(|message| ApiError::field("password", message))?;
    let user = match core.users.find_user_by_email(&email.normalized()).await? {
        Some(user) => user,
        None => {
            let new = NewUser {
                email: email.clone(),
                password: password.clone(),
                first_name: None,
                last_name: None,
                full_name: None,
                marketing_opt_in: false,
            };
            match register(core, new).await {
                Ok(user) => user,
                Err(ApiError::EmailTaken) => core
                    .users
                    .find_user_by_email(&email.normalized())
                    .await?
                    .ok_or(ApiError::EmailTaken)?,
                Err(other) => return Err(other),
            }
        }
    };
    let password_hash = core
        .hasher
        .hash(&password)
        .await
        .map_err(ApiError::internal)?;
    update(core, user.id, None, |user| {
        let mut roles = user.roles.clone();
        roles.push(Role::CsrAdmin);
        user.set_roles(roles);
        user.status = Status::Active;
        user.password_hash = password_hash.clone();
        Ok(())
    })
    .await
}

/// Re-authentication: `candidate` must be `user`'s password (401 "Password is incorrect."
/// otherwise). It is a login attempt of the user's email as far as the lockout goes: refused
/// with 429 while the email is locked, and the attempt is reserved as a failure before the
/// hash (a right password then resets it), so a stolen access token cannot be used to guess
/// the password. A wrong one is recorded as `login.failed` by the user.
pub async fn confirm_password(core: &Core, user: &User, candidate: &str) -> Result<(), ApiError> {
    confirm_password_by(core, user, candidate, &Cause::user(user.id)).await
}

/// `currentPassword` must be the caller's password: a field error when missing, 401
/// "Password is incorrect." when wrong, which counts as a failed login of their email (as
/// [`confirm_password`]).
pub async fn confirm_current_password(
    core: &Core,
    user: &User,
    current_password: Option<&str>,
) -> Result<(), ApiError> {
    let candidate = current_password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::field("currentPassword", "Is required."))?;
    confirm_password(core, user, candidate).await
}

/// [`confirm_password`] asked by `cause` (the caller and their session), which a failure's
/// events record.
pub async fn confirm_password_by(
    core: &Core,
    user: &User,
    candidate: &str,
    cause: &Cause,
) -> Result<(), ApiError> {
    let attempt = lockout::reserve(core, &user.email_key(), Some((user.id, cause))).await?;
    let matches = match Password::parse(candidate) {
        Ok(candidate) => {
            core.hasher
                .verify(&candidate, Some(&user.password_hash))
                .await
        }
        Err(_) => false,
    };
    if matches {
        lockout::succeeded(core, attempt).await
    } else {
        Err(ApiError::WrongPassword)
    }
}

/// A validated profile change (`PATCH /users/{uuid}`); `None` leaves a field as it is, and
/// `Some(None)` clears a name.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub full_name: Option<Option<String>>,
    pub email: Option<Email>,
    pub marketing_opt_in: Option<bool>,
    /// `true` records agreement to the terms now.
    pub tos_agreed: bool,
    /// A new password, already checked against the current one by the caller.
    pub password: Option<Password>,
    pub status: Option<Status>,
    /// Grants (`true`) or revokes (`false`) the csrAdmin role.
    pub admin: Option<bool>,
}

/// A saved profile change.
#[derive(Debug)]
pub struct ProfileChanged {
    pub user: User,
    /// The address changed (not just its case): it needs verifying again.
    pub email_changed: bool,
    /// The address it changed from, when it did: the one the notice goes to.
    pub moved_from: Option<String>,
}

/// Applies `change` to the live user when its version is one of `if_match` (any version when
/// `None`; 412 otherwise), on behalf of `cause`. A new password ends every session but the
/// cause's; deactivation ends them all.
pub async fn change_profile(
    core: &Core,
    id: UserId,
    change: ProfileChange,
    cause: &Cause,
    if_match: Option<&[u64]>,
) -> Result<ProfileChanged, ApiError> {
    let password_hash = match &change.password {
        Some(password) => Some(
            core.hasher
                .hash(password)
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let deactivating = change.status == Some(Status::Inactive);
    let keep_session = cause
        .session
        .filter(|_| password_hash.is_some() && !deactivating);
    let now = core.clock.now();
    let mut email_changed = false;
    let mut moved_from = None;
    let user = update_by(core, id, keep_session, cause, |user| {
        if if_match.is_some_and(|versions| !versions.contains(&user.version)) {
            return Err(ApiError::VersionConflict);
        }
        for (field, value) in [
            (&mut user.first_name, &change.first_name),
            (&mut user.last_name, &change.last_name),
            (&mut user.full_name, &change.full_name),
        ] {
            if let Some(value) = value {
                field.clone_from(value);
            }
        }
        email_changed = false;
        moved_from = None;
        if let Some(email) = &change.email {
            if email.normalized() != user.email_key() {
                email_changed = true;
                moved_from = Some(user.email.clone());
                user.email_verified = false;
            }
            user.email = email.as_str().to_owned();
        }
        if let Some(opt_in) = change.marketing_opt_in {
            user.marketing_opt_in = opt_in;
        }
        if change.tos_agreed {
            user.tos_agreed_at = Some(now);
        }
        if let Some(hash) = &password_hash {
            user.password_hash.clone_from(hash);
        }
        if let Some(status) = change.status {
            user.status = status;
        }
        if password_hash.is_some() || deactivating {
            revoke_all_sessions(user);
        }
        match change.admin {
            Some(true) => {
                let roles = user.roles.clone();
                user.set_roles(roles.into_iter().chain([Role::CsrAdmin]));
            }
            Some(false) => user.roles.retain(|role| *role != Role::CsrAdmin),
            None => {}
        }
        Ok(())
    })
    .await?;
    Ok(ProfileChanged {
        user,
        email_changed,
        moved_from,
    })
}

/// Soft delete on behalf of `cause`: the user is hidden from every read, the store releases
/// the email, every session ends, 2FA is removed and so are the passkeys with their
/// credential claims.
pub async fn soft_delete(core: &Core, id: UserId, cause: &Cause) -> Result<User, ApiError> {
    let user = update_by(core, id, None, cause, |user| {
        user.status = Status::Deleted;
        user.clear_second_factors();
        revoke_all_sessions(user);
        Ok(())
    })
    .await?;
    // After the user is deleted no passkey of theirs logs in; this frees their credential ids.
    core.passkeys.delete_all_passkeys(id).await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::App;

    fn new_user(email: &str) -> NewUser {
        NewUser {
            email: Email::parse(email).unwrap(),
            password: Password::parse("correct horse").unwrap(),
            first_name: Some("Ada".into()),
            last_name: None,
            full_name: None,
            marketing_opt_in: false,
        }
    }

    #[tokio::test]
    async fn registering_an_email_twice_in_any_case_is_refused() {
        let app = App::in_memory();
        register(&app, new_user("ada@example.com")).await.unwrap();
        let again = register(&app, new_user("ADA@example.com")).await;
        assert!(matches!(again, Err(ApiError::EmailTaken)));
    }

    #[tokio::test]
    async fn admin_is_created_then_promoted_idempotently() {
        let app = App::in_memory();
        let first = create_or_promote_admin(&app, "boss@example.com", "s3cret-pass")
            .await
            .unwrap();
        let second = create_or_promote_admin(&app, "boss@example.com", "s3cret-pass")
            .await
            .unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(second.roles, vec![Role::CsrAdmin]);
    }

    #[tokio::test]
    async fn update_retries_and_bumps_the_version() {
        let app = App::in_memory();
        let user = register(&app, new_user("v@example.com")).await.unwrap();
        let updated = update(&app, user.id, None, |u| {
            u.first_name = Some("Grace".into());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(updated.version, user.version + 1);
    }

    #[tokio::test]
    async fn a_stale_if_match_changes_nothing() {
        let app = App::in_memory();
        let user = register(&app, new_user("etag@example.com")).await.unwrap();
        let change = ProfileChange {
            first_name: Some(Some("Grace".into())),
            ..Default::default()
        };
        let stale = change_profile(
            &app,
            user.id,
            change,
            &Cause::default(),
            Some(&[user.version + 7]),
        )
        .await;
        assert!(matches!(stale, Err(ApiError::VersionConflict)));
        let stored = find_live(&app, user.id).await.unwrap().unwrap();
        assert_eq!(stored.version, user.version);
    }

    #[tokio::test]
    async fn changing_the_address_unverifies_it_but_a_case_change_does_not() {
        let app = App::in_memory();
        let user = register(&app, new_user("case@example.com")).await.unwrap();
        update(&app, user.id, None, |u| {
            u.email_verified = true;
            Ok(())
        })
        .await
        .unwrap();
        let to = |email: &str| ProfileChange {
            email: Some(Email::parse(email).unwrap()),
            ..Default::default()
        };
        let cased = change_profile(
            &app,
            user.id,
            to("CASE@example.com"),
            &Cause::default(),
            None,
        )
        .await
        .unwrap();
        assert!(!cased.email_changed && cased.user.email_verified);
        let moved = change_profile(
            &app,
            user.id,
            to("new@example.com"),
            &Cause::default(),
            None,
        )
        .await
        .unwrap();
        assert!(moved.email_changed && !moved.user.email_verified);
        assert!(register(&app, new_user("case@example.com")).await.is_ok());
    }

    #[tokio::test]
    async fn soft_delete_frees_the_email_and_removes_two_factor() {
        let app = App::in_memory();
        let user = register(&app, new_user("gone@example.com")).await.unwrap();
        update(&app, user.id, None, |u| {
            u.mobile = Some("+15555550100".into());
            Ok(())
        })
        .await
        .unwrap();
        let deleted = soft_delete(&app, user.id, &Cause::default()).await.unwrap();
        assert_eq!(deleted.status, Status::Deleted);
        assert_eq!(
            (deleted.mobile, deleted.session_epoch),
            (None, user.session_epoch + 1)
        );
        assert!(find_live(&app, user.id).await.unwrap().is_none());
        assert!(register(&app, new_user("gone@example.com")).await.is_ok());
    }
}
