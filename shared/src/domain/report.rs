//! Diagnostic reports: the validated request, the stored record, and the ports of the records
//! (`ReportStore`) and of the files (`ReportStorage`, which only presigns: clients move the
//! bytes themselves).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::StoreError;
use super::clock;
use super::ids::{ReportId, UserId};
use crate::error::{ApiError, FieldErrors};

/// How long a presigned upload or download URL works.
pub const URL_LIFETIME: Duration = Duration::minutes(15);
pub const MAX_FILE_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The largest file a report may announce (`size`), in bytes: 100 MiB.
pub const MAX_SIZE_BYTES: u64 = 104_857_600;
/// Reports one user may create per [`QUOTA_WINDOW`].
pub const REPORTS_PER_WINDOW: usize = 20;
pub const QUOTA_WINDOW: Duration = Duration::hours(24);
pub const CONTENT_TYPES: [&str; 7] = [
    "text/plain",
    "application/json",
    "application/zip",
    "application/gzip",
    "application/octet-stream",
    "image/png",
    "image/jpeg",
];

/// The name the client gives the file: 1–255 characters, no path separators or control
/// characters (it ends up in a `Content-Disposition` and in whatever saves the download).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let chars = input.chars().count();
        if chars == 0 {
            return Err("Must not be empty.");
        }
        if chars > MAX_FILE_NAME_CHARS {
            return Err("Must be at most 255 characters.");
        }
        if input
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err("Must not contain /, \\ or control characters.");
        }
        if input == "." || input == ".." {
            return Err("Must be a file name.");
        }
        Ok(Self(input.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One of the media types reports may have, exactly as listed in [`CONTENT_TYPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentType(&'static str);

impl ContentType {
    pub fn parse(input: &str) -> Result<Self, String> {
        CONTENT_TYPES
            .iter()
            .find(|allowed| **allowed == input)
            .map(|allowed| Self(allowed))
            .ok_or_else(|| format!("Must be one of {}.", CONTENT_TYPES.join(", ")))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// Free text from the user about what went wrong, at most 2000 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        if input.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err("Must be at most 2000 characters.");
        }
        Ok(Self(input.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated create request.
#[derive(Clone, Debug, Default)]
pub struct NewReport {
    pub file_name: Option<FileName>,
    pub content_type: Option<ContentType>,
    pub description: Option<Description>,
    /// The file's exact size in bytes, signed into the upload when given.
    pub size: Option<u64>,
}

impl NewReport {
    /// Validates the optional fields of a create body, collecting an error per bad field.
    pub fn parse(
        file_name: Option<&str>,
        content_type: Option<&str>,
        description: Option<&str>,
        size: Option<i64>,
    ) -> Result<Self, ApiError> {
        let mut fields = FieldErrors::new();
        let mut check = |name: &str, message: String| {
            fields.entry(name.to_owned()).or_default().push(message);
        };
        let file_name = file_name
            .map(FileName::parse)
            .transpose()
            .unwrap_or_else(|m| {
                check("fileName", m.to_owned());
                None
            });
        let content_type = content_type
            .map(ContentType::parse)
            .transpose()
            .unwrap_or_else(|m| {
                check("contentType", m);
                None
            });
        let description = description
            .map(Description::parse)
            .transpose()
            .unwrap_or_else(|m| {
                check("description", m.to_owned());
                None
            });
        let size = size.and_then(|size| match u64::try_from(size) {
            Ok(size @ 1..=MAX_SIZE_BYTES) => Some(size),
            _ => {
                check("size", format!("Must be between 1 and {MAX_SIZE_BYTES}."));
                None
            }
        });
        if !fields.is_empty() {
            return Err(ApiError::Validation(fields));
        }
        Ok(Self {
            file_name,
            content_type,
            description,
            size,
        })
    }
}

/// A stored report record. The file itself is in S3 under [`Report::object_key`].
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub id: ReportId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub description: Option<String>,
}

impl Report {
    pub fn object_key(&self) -> String {
        format!("diagnostic-reports/{}/{}", self.user_id, self.id)
    }

    /// Orders a user's reports by creation time, the uuid breaking ties.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", clock::format(self.created_at), self.id)
    }
}

/// How the client uploads a new report's file: a presigned `PUT` and the headers it must send.
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_at: OffsetDateTime,
}

/// A report just recorded, with the upload of its file.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedReport {
    pub report: Report,
    pub upload: Upload,
}

/// A report in a listing, with a presigned download of its file.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedReport {
    pub report: Report,
    pub download_url: String,
}

/// When the user's recent reports were created, oldest first (the quota counts the last
/// 24 hours).
#[derive(Clone, Debug, PartialEq)]
pub struct ReportQuota {
    pub user_id: UserId,
    pub created_at: Vec<OffsetDateTime>,
    pub version: u64,
}

/// Where a listing starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportStart {
    /// After this many reports (page-based listing).
    Skip(u64),
    /// After the report with this [`Report::sort_key`] (cursor-based listing).
    After(String),
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// The user's quota log, by a consistent read.
    async fn get_report_quota(&self, user: UserId) -> Result<Option<ReportQuota>, StoreError>;

    /// Stores the report and the quota log that counts it, in one transaction: only if the
    /// stored log still has `expected_version` (`None`: there is none), else
    /// `VersionConflict` and nothing is written.
    async fn create_report(
        &self,
        report: &Report,
        quota: &ReportQuota,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    async fn count_reports(&self, user: UserId) -> Result<u64, StoreError>;

    /// The user's reports by sort key (newest first unless `ascending`), from `start`, at most
    /// `limit`.
    async fn list_reports(
        &self,
        user: UserId,
        start: ReportStart,
        limit: usize,
        ascending: bool,
    ) -> Result<Vec<Report>, StoreError>;
}

#[async_trait]
pub trait ReportStorage: Send + Sync {
    /// A URL that lets its holder `PUT` the object at `key` from `starts_at` for `lifetime`.
    /// A given `content_type` is signed, so the upload must send exactly that `Content-Type`,
    /// and so is a given `content_length` (the upload must be exactly that many bytes).
    async fn presign_upload(
        &self,
        key: &str,
        content_type: Option<&str>,
        content_length: Option<u64>,
        starts_at: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, StoreError>;

    /// A URL that lets its holder `GET` the object at `key`, saved as `file_name` when given.
    async fn presign_download(
        &self,
        key: &str,
        file_name: Option<&str>,
        starts_at: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_names(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(fields) => fields.into_keys().collect(),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn every_listed_content_type_is_accepted_exactly() {
        for content_type in CONTENT_TYPES {
            assert_eq!(
                ContentType::parse(content_type).unwrap().as_str(),
                content_type
            );
        }
        for other in [
            "text/html",
            "TEXT/PLAIN",
            "text/plain; charset=utf-8",
            "",
            "image/*",
        ] {
            assert!(ContentType::parse(other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn file_names_refuse_separators_control_characters_and_length() {
        assert!(FileName::parse("robot-logs 2024-05-01.zip").is_ok());
        assert!(FileName::parse("журнал.txt").is_ok());
        assert!(FileName::parse(&"a".repeat(255)).is_ok());
        for bad in ["", "a/b", "a\\b", "a\nb", "a\u{0}b", "a\u{7f}", "..", "."] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FileName::parse(&"a".repeat(256)).is_err());
        assert!(
            FileName::parse(&"é".repeat(255)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn descriptions_are_limited_to_2000_characters() {
        assert!(Description::parse(&"x".repeat(2000)).is_ok());
        assert!(Description::parse(&"x".repeat(2001)).is_err());
    }

    #[test]
    fn every_bad_create_field_is_reported_under_its_name() {
        let long = "x".repeat(2001);
        let error =
            NewReport::parse(Some("a/b"), Some("text/html"), Some(&long), Some(0)).unwrap_err();
        assert_eq!(
            field_names(error),
            ["contentType", "description", "fileName", "size"]
        );
    }

    #[test]
    fn sizes_run_from_one_byte_to_100_mib() {
        let size = |size| NewReport::parse(None, None, None, Some(size)).map(|new| new.size);
        assert_eq!(size(1).unwrap(), Some(1));
        assert_eq!(size(104_857_600).unwrap(), Some(104_857_600));
        for bad in [0, -1, 104_857_601, i64::MAX] {
            assert_eq!(field_names(size(bad).unwrap_err()), ["size"], "{bad}");
        }
        assert_eq!(NewReport::parse(None, None, None, None).unwrap().size, None);
    }
}
