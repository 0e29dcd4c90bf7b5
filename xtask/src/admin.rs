//! `cargo xtask admin --email E --password P`: a csrAdmin, made by the same code as
//! `POST /users`, in the running dev stack, or in a deployed table when TABLE_NAME is set.

use std::process::ExitCode;

use shared::{ApiError, App};

use crate::localenv::{DEV_PORTS, LocalEnv, Purpose};
use crate::{Result, block_on, root};

pub struct Args {
    email: String,
    password: String,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self> {
        let (mut email, mut password) = (None, None);
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--email" => &mut email,
                "--password" => &mut password,
                other => return Err(format!("admin: unknown argument {other:?}").into()),
            };
            *slot = Some(
                args.next()
                    .ok_or_else(|| format!("admin: {flag} needs a value"))?
                    .clone(),
            );
        }
        match (email, password) {
            (Some(email), Some(password)) => Ok(Self { email, password }),
            _ => Err("usage: cargo xtask admin --email EMAIL --password PASSWORD".into()),
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    // TABLE_NAME set by the caller means a deployed table: keep their AWS environment as is.
    let local = std::env::var_os("TABLE_NAME").is_none();
    if local {
        let env = LocalEnv::new(
            Purpose::Dev,
            DEV_PORTS,
            &root().join(".localaws/secrets.json"),
        );
        // SAFETY: no runtime, hence no other thread, exists yet.
        unsafe { env.apply_to_process() };
        let dynamodb = format!("127.0.0.1:{}", DEV_PORTS.dynamodb);
        if std::net::TcpStream::connect(&dynamodb).is_err() {
            return Err(format!(
                "no DynamoDB Local answers on {dynamodb}: start `cargo xtask dev` first \
                 (or set TABLE_NAME and your AWS environment to use a deployed table)"
            )
            .into());
        }
    }
    block_on(async {
        let app = App::from_env().await?;
        let user =
            shared::service::users::create_or_promote_admin(&app, &args.email, &args.password)
                .await
                .map_err(|error| match error {
                    ApiError::Validation(fields) => format!("cannot create the admin: {fields:?}"),
                    other => format!("cannot create the admin: {other}"),
                })?;
        println!("{}", user.id);
        Ok(ExitCode::SUCCESS)
    })?
}
