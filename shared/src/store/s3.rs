//! Object storage for diagnostic report files. Clients move the bytes themselves through
//! presigned URLs, so the port only signs; signing is local (no request per URL).

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::{Duration, OffsetDateTime};

use crate::domain::StoreError;
use crate::domain::report::ReportStorage;

/// The reports bucket in S3.
#[derive(Clone)]
pub struct S3ReportStorage {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ReportStorage {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

fn presigning(
    starts_at: OffsetDateTime,
    lifetime: Duration,
) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::builder()
        .start_time(SystemTime::from(starts_at))
        .expires_in(lifetime.unsigned_abs())
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))
}

fn presign_error<E: std::error::Error + 'static>(
    error: aws_sdk_s3::error::SdkError<E>,
) -> StoreError {
    StoreError::Backend(aws_sdk_s3::error::DisplayErrorContext(error).to_string())
}

/// What RFC 8187 leaves unencoded in `filename*` (attr-char).
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with the name as an ASCII fallback and exactly in UTF-8 (RFC 6266).
pub fn content_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(file_name, ATTR_CHAR)
    )
}

#[async_trait]
impl ReportStorage for S3ReportStorage {
    async fn presign_upload(
        &self,
        key: &str,
        content_type: Option<&str>,
        content_length: Option<u64>,
        starts_at: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, StoreError> {
        let content_length = content_length
            .map(|length| i64::try_from(length).map_err(|e| StoreError::Backend(e.to_string())))
            .transpose()?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            // Signed (the SDK keeps `content-length` among the signed headers), so S3 refuses
            // an upload of any other size.
            .set_content_length(content_length)
            .presigned(presigning(starts_at, lifetime)?)
            .await
            .map_err(presign_error)?;
        Ok(request.uri().to_owned())
    }

    async fn presign_download(
        &self,
        key: &str,
        file_name: Option<&str>,
        starts_at: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, StoreError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_disposition(file_name.map(content_disposition))
            .presigned(presigning(starts_at, lifetime)?)
            .await
            .map_err(presign_error)?;
        Ok(request.uri().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_keeps_the_exact_name_and_a_safe_fallback() {
        assert_eq!(
            content_disposition("logs.zip"),
            "attachment; filename=\"logs.zip\"; filename*=UTF-8''logs.zip"
        );
        assert_eq!(
            content_disposition("a \"b\" é.txt"),
            "attachment; filename=\"a _b_ _.txt\"; filename*=UTF-8''a%20%22b%22%20%C3%A9.txt"
        );
    }
}
