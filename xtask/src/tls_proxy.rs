//! HTTPS in front of DynamoDB Local, as real DynamoDB is: a TLS terminator on loopback with a
//! throwaway CA (made with the `openssl` command, trusted by the functions through
//! `SSL_CERT_FILE`), forwarding each request to DynamoDB Local over plain HTTP.
//!
//! It also times every request it forwards (request head in to response body out), so the
//! benchmark can tell a function's own time from its DynamoDB time, and counts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::Result;

/// The CA file (for `SSL_CERT_FILE`) and the server's certificate chain and key.
pub struct Certificates {
    pub ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

/// Makes a CA and a certificate for `localhost` and 127.0.0.1 signed by it, in `dir`.
pub fn make_certificates(dir: &Path) -> Result<Certificates> {
    std::fs::create_dir_all(dir)?;
    let path = |name: &str| dir.join(name);
    let extensions = path("server.ext");
    std::fs::write(
        &extensions,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let steps: [Vec<String>; 3] = [
        [
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kuri bench throwaway CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
        .iter()
        .chain(&ec)
        .map(|s| s.to_string())
        .chain(["-keyout".into(), s(&path("ca.key"))])
        .chain(["-out".into(), s(&path("ca.pem"))])
        .collect(),
        ["req", "-nodes", "-subj", "/CN=localhost"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(["-keyout".into(), s(&path("server.key"))])
            .chain(["-out".into(), s(&path("server.csr"))])
            .collect(),
        [
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            "2",
            "-in",
            &s(&path("server.csr")),
            "-CA",
            &s(&path("ca.pem")),
            "-CAkey",
            &s(&path("ca.key")),
            "-extfile",
            &s(&extensions),
            "-out",
            &s(&path("server.pem")),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for args in steps {
        let output = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args[0],
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
    }
    Ok(Certificates {
        ca: path("ca.pem"),
        chain: path("server.pem"),
        key: path("server.key"),
    })
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// Requests forwarded so far and the time they took, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Forwarded {
    pub requests: u64,
    pub busy: Duration,
}

impl std::ops::Sub for Forwarded {
    type Output = Forwarded;
    fn sub(self, earlier: Forwarded) -> Forwarded {
        Forwarded {
            requests: self.requests - earlier.requests,
            busy: self.busy.saturating_sub(earlier.busy),
        }
    }
}

pub struct TlsProxy {
    forwarded: Arc<Mutex<Forwarded>>,
    server: JoinHandle<()>,
}

impl TlsProxy {
    /// Serves on `listener` (bound before the runtime, so that the environment could name its
    /// port) and forwards to `upstream` (plain HTTP).
    pub fn start(
        listener: std::net::TcpListener,
        certificates: &Certificates,
        upstream: SocketAddr,
    ) -> Result<Self> {
        let chain = CertificateDer::pem_file_iter(&certificates.chain)
            .map_err(|e| format!("{}: {e}", certificates.chain.display()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", certificates.chain.display()))?;
        let key = PrivateKeyDer::from_pem_file(&certificates.key)
            .map_err(|e| format!("{}: {e}", certificates.key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let forwarded = Arc::new(Mutex::new(Forwarded::default()));
        let server = tokio::spawn(serve(listener, acceptor, upstream, forwarded.clone()));
        Ok(Self { forwarded, server })
    }

    /// Everything forwarded so far; subtract two of these for what happened in between.
    pub fn forwarded(&self) -> Forwarded {
        *self.forwarded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    forwarded: Arc<Mutex<Forwarded>>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let (acceptor, forwarded) = (acceptor.clone(), forwarded.clone());
        connections.spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            // One upstream connection per client connection, kept alive as the client's is.
            let Ok(upstream) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let Ok((sender, connection)) =
                hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
            else {
                return;
            };
            tokio::spawn(connection);
            let sender = Arc::new(tokio::sync::Mutex::new(sender));
            let service = service_fn(move |request: Request<Incoming>| {
                let (sender, forwarded) = (sender.clone(), forwarded.clone());
                async move {
                    let started = Instant::now();
                    let response = forward(&sender, request).await;
                    let mut total = forwarded.lock().unwrap_or_else(|e| e.into_inner());
                    total.requests += 1;
                    total.busy += started.elapsed();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn forward(
    sender: &tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return bad_gateway();
    };
    let request = Request::from_parts(parts, Full::new(body.to_bytes()));
    let Ok(response) = sender.lock().await.send_request(request).await else {
        return bad_gateway();
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"upstream failed")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DynamoDB Local of `cargo xtask test`, behind a terminator whose CA only `extra` names.
    async fn list_tables_over_tls(extra: Option<Vec<u8>>, port: u16) -> bool {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let config = aws_sdk_dynamodb::config::Builder::from(&aws)
            .http_client(shared::aws::https_client(extra))
            .endpoint_url(format!("https://localhost:{port}"))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        client.list_tables().limit(1).send().await.is_ok()
    }

    #[tokio::test]
    async fn the_functions_client_trusts_the_aws_roots_and_the_extra_ca_only() {
        let upstream: std::net::SocketAddr = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .expect("cargo xtask test sets AWS_ENDPOINT_URL_DYNAMODB")
            .trim_start_matches("http://")
            .parse()
            .expect("DynamoDB Local is at an IP address and port");
        let dir = crate::root()
            .join(".localaws")
            .join(format!("tls-test-{}", uuid::Uuid::new_v4().simple()));
        let certificates = make_certificates(&dir).expect("openssl makes a throwaway CA");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let proxy = TlsProxy::start(listener, &certificates, upstream).expect("the terminator");
        let ca = std::fs::read(&certificates.ca).expect("the CA file");

        // The platform's store is not consulted: the throwaway CA is in no store, and the AWS
        // roots did not sign it.
        assert!(!list_tables_over_tls(None, port).await);
        assert_eq!(proxy.forwarded().requests, 0);
        assert!(list_tables_over_tls(Some(ca), port).await);
        assert_eq!(proxy.forwarded().requests, 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
