//! Outgoing email: the kinds of mail the product sends (password recovery, email
//! verification, the security notices: passkey added, password changed or reset, email
//! changed), rendered from the templates in `shared/templates/`, and the `Mailer` port
//! (adapters in `notify`).
//!
//! A mail carries a secret link, so neither its body nor its link is ever logged.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;
use time::Duration;

/// One rendered email: a subject, a plain-text part and an HTML part.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Shows only the subject: the recipient is personal data and the body holds a secret link.
impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

struct Template {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

const RECOVERY: Template = Template {
    subject: include_str!("../../templates/recovery.subject.txt"),
    text: include_str!("../../templates/recovery.txt"),
    html: include_str!("../../templates/recovery.html"),
};

const VERIFICATION: Template = Template {
    subject: include_str!("../../templates/verification.subject.txt"),
    text: include_str!("../../templates/verification.txt"),
    html: include_str!("../../templates/verification.html"),
};

const PASSKEY_ADDED: Template = Template {
    subject: include_str!("../../templates/passkey-added.subject.txt"),
    text: include_str!("../../templates/passkey-added.txt"),
    html: include_str!("../../templates/passkey-added.html"),
};

const PASSWORD_CHANGED: Template = Template {
    subject: include_str!("../../templates/password-changed.subject.txt"),
    text: include_str!("../../templates/password-changed.txt"),
    html: include_str!("../../templates/password-changed.html"),
};

const PASSWORD_RESET: Template = Template {
    subject: include_str!("../../templates/password-reset.subject.txt"),
    text: include_str!("../../templates/password-reset.txt"),
    html: include_str!("../../templates/password-reset.html"),
};

const EMAIL_CHANGED: Template = Template {
    subject: include_str!("../../templates/email-changed.subject.txt"),
    text: include_str!("../../templates/email-changed.txt"),
    html: include_str!("../../templates/email-changed.html"),
};

const SECOND_FACTOR_REMOVED: Template = Template {
    subject: include_str!("../../templates/second-factor-removed.subject.txt"),
    text: include_str!("../../templates/second-factor-removed.txt"),
    html: include_str!("../../templates/second-factor-removed.html"),
};

/// A second factor a notice can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedFactor {
    PhoneNumber,
    AuthenticatorApp,
}

impl Mail {
    /// The security notice after the password of the account at `to` was changed (no link,
    /// no token).
    pub fn password_changed(to: &str) -> Self {
        Self::render(&PASSWORD_CHANGED, to, &[("email", to)])
    }

    /// The security notice after the password of the account at `to` was reset with a
    /// recovery link (no link, no token).
    pub fn password_reset(to: &str) -> Self {
        Self::render(&PASSWORD_RESET, to, &[("email", to)])
    }

    /// The security notice to `old_address` after the account's email moved away from it
    /// (no link, no token, and not the new address).
    pub fn email_changed(old_address: &str) -> Self {
        Self::render(&EMAIL_CHANGED, old_address, &[("email", old_address)])
    }

    /// The security notice after `factors` were removed from the account at `to` (no link,
    /// no token).
    pub fn second_factor_removed(to: &str, factors: &[RemovedFactor]) -> Self {
        let names: Vec<&str> = factors
            .iter()
            .map(|factor| match factor {
                RemovedFactor::PhoneNumber => "the phone number",
                RemovedFactor::AuthenticatorApp => "the authenticator app",
            })
            .collect();
        let factor = names.join(" and ");
        Self::render(
            &SECOND_FACTOR_REMOVED,
            to,
            &[("factor", &factor), ("email", to)],
        )
    }

    /// The security notice after a passkey was added to the account at `to` (no link, no
    /// token).
    pub fn passkey_added(to: &str, name: &str) -> Self {
        Self::render(&PASSKEY_ADDED, to, &[("name", name), ("email", to)])
    }

    /// The password-recovery mail: `link` opens the reset page, valid for `valid_for`.
    pub fn recovery(to: &str, link: &str, valid_for: Duration) -> Self {
        Self::render(
            &RECOVERY,
            to,
            &[("link", link), ("valid_for", &describe(valid_for))],
        )
    }

    /// The email-verification mail: `link` confirms `to`, valid for `valid_for`.
    pub fn verification(to: &str, link: &str, valid_for: Duration) -> Self {
        Self::render(
            &VERIFICATION,
            to,
            &[
                ("link", link),
                ("email", to),
                ("valid_for", &describe(valid_for)),
            ],
        )
    }

    fn render(template: &Template, to: &str, values: &[(&str, &str)]) -> Self {
        Self {
            to: to.to_owned(),
            subject: render(template.subject.trim(), values, Cow::Borrowed),
            text: render(template.text, values, Cow::Borrowed),
            html: render(template.html, values, escape_html),
        }
    }
}

/// "1 hour", "24 hours": how long a link works, in words.
fn describe(valid_for: Duration) -> String {
    match valid_for.whole_hours() {
        1 => "1 hour".to_owned(),
        hours if hours > 1 => format!("{hours} hours"),
        _ => format!("{} minutes", valid_for.whole_minutes()),
    }
}

/// Replaces each `{{name}}` by its value passed through `escape`; an unknown name stays as is.
fn render<'a>(
    template: &str,
    values: &[(&str, &'a str)],
    escape: impl Fn(&'a str) -> Cow<'a, str>,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + length].trim();
        out.push_str(&rest[..start]);
        match values.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(&escape(value)),
            None => out.push_str(&rest[start..start + length + 4]),
        }
        rest = &rest[start + length + 4..];
    }
    out.push_str(rest);
    out
}

fn escape_html(value: &str) -> Cow<'_, str> {
    if !value.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

#[derive(Debug, thiserror::Error)]
#[error("sending mail failed: {0}")]
pub struct MailError(pub String);

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_kept() {
        let out = render(
            "a {{x}} b {{ y }} c {{z}} {{",
            &[("x", "1"), ("y", "2")],
            Cow::Borrowed,
        );
        assert_eq!(out, "a 1 b 2 c {{z}} {{");
    }

    #[test]
    fn html_part_escapes_values_and_text_part_keeps_them() {
        let mail = Mail::verification(
            "o'brien+<x>@example.com",
            "https://app.example/v?token=abc&x=1",
            Duration::hours(24),
        );
        assert!(mail.html.contains("o&#39;brien+&lt;x&gt;@example.com"));
        assert!(
            mail.html
                .contains("href=\"https://app.example/v?token=abc&amp;x=1\"")
        );
        assert!(!mail.html.contains("<x>"));
        assert!(mail.text.contains("o'brien+<x>@example.com"));
        assert!(mail.text.contains("https://app.example/v?token=abc&x=1"));
    }

    #[test]
    fn every_placeholder_of_both_mails_is_filled() {
        let link = "https://app.example/reset-password?token=T0k3n";
        for mail in [
            Mail::recovery("a@example.com", link, Duration::hours(1)),
            Mail::verification("a@example.com", link, Duration::hours(24)),
            Mail::passkey_added("a@example.com", link),
        ] {
            for part in [&mail.subject, &mail.text, &mail.html] {
                assert!(!part.contains("{{"), "unfilled placeholder in {part}");
            }
            assert!(mail.text.contains(link));
            assert!(mail.html.contains(link));
            assert!(!mail.subject.contains('\n'));
        }
    }

    #[test]
    fn notices_fill_every_placeholder_and_carry_no_link() {
        for mail in [
            Mail::password_changed("a@example.com"),
            Mail::password_reset("a@example.com"),
            Mail::email_changed("a@example.com"),
        ] {
            for part in [&mail.subject, &mail.text, &mail.html] {
                assert!(!part.contains("{{"), "unfilled placeholder in {part}");
                assert!(!part.contains("http") && !part.contains("token="));
            }
            assert!(mail.text.contains("a@example.com") && mail.html.contains("a@example.com"));
            assert!(!mail.subject.contains('\n') && !mail.subject.is_empty());
        }
    }

    #[test]
    fn the_second_factor_notice_names_what_was_removed_and_carries_no_link() {
        let both = [RemovedFactor::PhoneNumber, RemovedFactor::AuthenticatorApp];
        let mail = Mail::second_factor_removed("a@example.com", &both);
        assert!(
            mail.text
                .contains(": the phone number and the authenticator app.")
        );
        let app = Mail::second_factor_removed("a@example.com", &both[1..]);
        assert!(app.html.contains("<strong>the authenticator app</strong>"));
        for part in [&mail.subject, &mail.text, &mail.html] {
            assert!(!part.contains("{{") && !part.contains("http") && !part.contains("token"));
        }
    }

    #[test]
    fn mails_say_how_long_the_link_works() {
        let recovery = Mail::recovery("a@example.com", "l", Duration::hours(1));
        assert!(recovery.text.contains("within 1 hour:"));
        let verification = Mail::verification("a@example.com", "l", Duration::hours(24));
        assert!(verification.text.contains("within 24 hours:"));
    }

    #[test]
    fn debug_shows_neither_recipient_nor_body() {
        let mail = Mail::recovery(
            "secret@example.com",
            "https://x/?token=SECRET",
            Duration::hours(1),
        );
        let shown = format!("{mail:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("secret@example.com"));
    }
}
