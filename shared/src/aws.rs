//! The AWS configuration a function loads at cold start: the SDK's defaults, with a TLS trust
//! store of the roots AWS endpoints chain to instead of the platform's.
//!
//! The SDK's default HTTPS client builds its trust store from the platform's at the first
//! request: on Debian the CA bundle and then every file of `/etc/ssl/certs` (about 290 reads and
//! certificate parses), 7 ms of an unthrottled core here in each cold start, for roots no AWS
//! endpoint uses. Every AWS service endpoint chains to Amazon Trust Services (Amazon Root CA 1–4,
//! cross-signed by Starfield Services Root G2): those five are the store (`data/aws-root-cas.pem`,
//! provenance in `data/README.md`), which also narrows whom a function trusts. The certificates
//! of `SSL_CERT_FILE` are added to them: a TLS proxy in front of an emulator (the bench's), or a
//! corporate proxy.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority - G2, PEM.
pub const ROOT_CAS_PEM: &str = include_str!("../data/aws-root-cas.pem");

/// The SDK's defaults (region, credentials, endpoints from the environment) on
/// [`https_client`], trusting also the certificates of `SSL_CERT_FILE` when it is set.
pub async fn load() -> aws_config::SdkConfig {
    let extra = std::env::var_os("SSL_CERT_FILE").and_then(|path| match std::fs::read(&path) {
        Ok(pem) => Some(pem),
        Err(error) => {
            tracing::warn!(path = %path.to_string_lossy(), %error, "SSL_CERT_FILE is not readable; trusting the AWS roots only");
            None
        }
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client(extra))
        .load()
        .await
}

/// The SDK's default client (hyper 1, rustls on aws-lc, proxies from the environment, the
/// SDK's timeouts and sleep) trusting [`ROOT_CAS_PEM`] and the PEM certificates of `extra`,
/// and nothing of the platform's store.
pub fn https_client(extra: Option<Vec<u8>>) -> SharedHttpClient {
    let mut store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ROOT_CAS_PEM.as_bytes());
    if let Some(pem) = extra {
        store.add_pem_certificate(pem);
    }
    let context = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("a TLS context of a trust store alone always builds");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::ROOT_CAS_PEM;

    /// The SHA-256 fingerprints of `data/README.md`.
    const FINGERPRINTS: [&str; 5] = [
        "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E",
        "1BA5B2AA8C65401A82960118F80BEC4F62304D83CEC4713A19C39C011EA46DB4",
        "18CE6CFE7BF14E60B2E347B8DFE868CB31D02EBB3ADA271569F50343B46DB3A4",
        "E35D28419ED02025CFA69038CD623962458DA5C695FBDEA3C22B0BFB25897092",
        "568D6905A2C88708A4B3025190EDCFEDB1974A606A13C6E5290FCB2AE63EDAB5",
    ];

    #[test]
    fn the_trust_store_is_the_five_aws_roots_and_nothing_else() {
        let mut fingerprints = Vec::new();
        for block in ROOT_CAS_PEM.split("-----END CERTIFICATE-----") {
            let Some((_, body)) = block.split_once("-----BEGIN CERTIFICATE-----") else {
                assert!(
                    block.trim().is_empty(),
                    "text outside a certificate: {block:?}"
                );
                continue;
            };
            let base64: String = body.split_whitespace().collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(base64)
                .expect("a certificate is base64");
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            fingerprints.push(hex);
        }
        assert_eq!(fingerprints, FINGERPRINTS);
    }
}
