//! User lifecycle shared by the route groups: registration (also used by `cargo xtask admin`),
//! versioned saves and revoking every session.

use crate::email::Email;
use crate::ids::{SessionId, UserId};
use crate::password::Password;
use crate::store::StoreError;
use crate::user::{Role, Status, User};
use crate::{ApiError, App};

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
pub async fn register(app: &App, new: NewUser) -> Result<User, ApiError> {
    if app
        .users
        .find_user_by_email(&new.email.normalized())
        .await?
        .is_some()
    {
        return Err(ApiError::EmailTaken);
    }
    let password_hash = app.hasher.hash(&new.password).await.map_err(ApiError::internal)?;
    let now = app.clock.now();
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
        created_at: now,
        updated_at: now,
    };
    app.users.create_user(&user).await?;
    Ok(user)
}

/// A live (not deleted) user, or `None`.
pub async fn find_live(app: &App, id: UserId) -> Result<Option<User>, ApiError> {
    Ok(app
        .users
        .get_user(id)
        .await?
        .filter(|user| user.status != Status::Deleted))
}

/// Applies `change` to the stored user and saves it if nobody wrote in between, retrying a
/// few times on a concurrent write. `change` may refuse with an error; it sees fresh data on
/// each try. Returns the saved user.
pub async fn update<F>(
    app: &App,
    id: UserId,
    keep_session: Option<SessionId>,
    mut change: F,
) -> Result<User, ApiError>
where
    F: FnMut(&mut User) -> Result<(), ApiError>,
{
    for _ in 0..5 {
        let previous = find_live(app, id).await?.ok_or(ApiError::UserNotFound)?;
        let mut user = previous.clone();
        change(&mut user)?;
        user.version = previous.version + 1;
        user.updated_at = app.clock.now();
        match app.users.save_user(&user, &previous, keep_session).await {
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
pub async fn create_or_promote_admin(app: &App, email: &str, password: &str) -> Result<User, ApiError> {
    let email = Email::parse(email).map_err(|message| ApiError::field("email", message))?;
    let password =
        Password::parse(password).map_err(|message| ApiError::field("password", message))?;
    let user = match app.users.find_user_by_email(&email.normalized()).await? {
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
            match register(app, new).await {
                Ok(user) => user,
                Err(ApiError::EmailTaken) => app
                    .users
                    .find_user_by_email(&email.normalized())
                    .await?
                    .ok_or(ApiError::EmailTaken)?,
                Err(other) => return Err(other),
            }
        }
    };
    let password_hash = app.hasher.hash(&password).await.map_err(ApiError::internal)?;
    update(app, user.id, None, |user| {
        let mut roles = user.roles.clone();
        roles.push(Role::CsrAdmin);
        user.set_roles(roles);
        user.status = Status::Active;
        user.password_hash = password_hash.clone();
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let first = create_or_promote_admin(&app, "boss@example.com", "s3cret-pass").await.unwrap();
        let second = create_or_promote_admin(&app, "boss@example.com", "s3cret-pass").await.unwrap();
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
}
