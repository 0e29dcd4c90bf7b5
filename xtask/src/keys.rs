//! `cargo xtask keys`: the secrets document every function reads at cold start (see
//! `shared::secrets`), fresh or with its signing key rotated, written to stdout as the
//! `aws secretsmanager` command that stores it. Meant to be piped into `sh`, so that the keys
//! reach only Secrets Manager: never the terminal, a file or the command line of a process
//! (the document goes to the AWS CLI on its standard input, through a here-document).

use std::io::Read;

use crate::Result;

const HEREDOC_END: &str = "KURI_USERS_SECRET_END";

pub struct Args {
    secret_id: String,
    rotate: bool,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut secret_id = None;
        let mut rotate = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--secret-id" => {
                    secret_id = Some(args.next().ok_or("--secret-id needs a value")?.clone())
                }
                "--rotate" => rotate = true,
                other => return Err(format!("keys: unknown argument {other:?}").into()),
            }
        }
        let secret_id = secret_id.unwrap_or_else(|| "kuri-users/keys".into());
        if secret_id.is_empty()
            || !secret_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@:-".contains(c))
        {
            return Err(format!(
                "keys: --secret-id {secret_id:?} is not a Secrets Manager name or ARN \
                 (letters, digits and /_+=.@:- only)"
            )
            .into());
        }
        Ok(Self { secret_id, rotate })
    }
}

pub fn run(args: Args) -> Result<std::process::ExitCode> {
    let command = if args.rotate {
        let mut current = String::new();
        std::io::stdin().read_to_string(&mut current)?;
        let rotated = shared::secrets::rotate_signing_key_json(current.trim())
            .map_err(|error| format!("keys --rotate: the current secret on stdin: {error}"))?;
        put_command(&args.secret_id, &rotated)
    } else {
        create_command(&args.secret_id, &shared::secrets::generate_secrets_json())
    };
    print!("{command}");
    Ok(std::process::ExitCode::SUCCESS)
}

fn create_command(secret_id: &str, document: &str) -> String {
    stdin_command(
        &format!(
            "aws secretsmanager create-secret --name '{secret_id}' \
             --description 'Kuri users API: JWT signing keys, HMAC key, TOTP key'"
        ),
        document,
    )
}

fn put_command(secret_id: &str, document: &str) -> String {
    stdin_command(
        &format!("aws secretsmanager put-secret-value --secret-id '{secret_id}'"),
        document,
    )
}

/// `command` reading `--secret-string` from a quoted here-document (no expansion inside).
fn stdin_command(command: &str, document: &str) -> String {
    assert!(
        !document.lines().any(|line| line == HEREDOC_END),
        "a JSON document cannot hold the here-document's end line"
    );
    format!(
        "{command} --secret-string file:///dev/stdin --query ARN --output text <<'{HEREDOC_END}'\n\
         {document}\n{HEREDOC_END}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document between the here-document's start and end lines.
    fn document(command: &str) -> &str {
        let start = command.find('\n').unwrap() + 1;
        let end = command.rfind(&format!("\n{HEREDOC_END}\n")).unwrap();
        &command[start..end]
    }

    fn args(list: &[&str]) -> Result<Args> {
        Args::parse(&list.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_create_command_carries_a_document_the_functions_parse() {
        let command = create_command("kuri-users/keys", &shared::secrets::generate_secrets_json());
        assert!(command.starts_with(
            "aws secretsmanager create-secret --name 'kuri-users/keys' --description"
        ));
        assert!(command.contains("--secret-string file:///dev/stdin"));
        let secrets = shared::secrets::parse(document(&command)).unwrap();
        assert_eq!(secrets.previous_jwt_private_key_der, None);
    }

    #[test]
    fn the_rotation_command_puts_the_new_signing_key_and_keeps_the_old_one_as_previous() {
        let current = shared::secrets::generate_secrets_json();
        let rotated = shared::secrets::rotate_signing_key_json(&current).unwrap();
        let command = put_command("kuri-users-dev/keys", &rotated);
        assert!(
            command.starts_with(
                "aws secretsmanager put-secret-value --secret-id 'kuri-users-dev/keys' "
            )
        );
        let (before, after) = (
            shared::secrets::parse(&current).unwrap(),
            shared::secrets::parse(document(&command)).unwrap(),
        );
        assert_eq!(
            after.previous_jwt_private_key_der,
            Some(before.jwt_private_key_der)
        );
        assert_eq!(after.hmac_key, before.hmac_key);
    }

    #[test]
    fn a_secret_id_that_the_shell_would_interpret_is_refused() {
        assert_eq!(args(&[]).unwrap().secret_id, "kuri-users/keys");
        let parsed = args(&[
            "--secret-id",
            "arn:aws:secretsmanager:eu-west-1:1:secret:k-Ab12Cd",
            "--rotate",
        ])
        .unwrap();
        assert!(parsed.rotate);
        for bad in ["x'; rm -rf ~; '", "a b", "$(id)", ""] {
            assert!(args(&["--secret-id", bad]).is_err(), "{bad:?}");
        }
        assert!(args(&["--secret-id"]).is_err());
        assert!(args(&["--what"]).is_err());
    }
}
