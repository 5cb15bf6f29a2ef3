//! An HTTP/2 client for the tests: one connection (over TLS with ALPN `h2`, or h2c with prior
//! knowledge) on which every request and stream is multiplexed, plus TLS helpers (a self-signed
//! pair written to files, a client that trusts only a given certificate).

use crate::sse::SseClient;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A certificate for `localhost` and its key, written as `<name>.crt` and `<name>.key` in `dir`;
/// returns (certificate file, key file, certificate PEM).
pub fn write_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let (cert, key) = herald_server::self_signed(&["localhost".to_owned()]).expect("certificate");
    let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_file, &cert).expect("write certificate");
    std::fs::write(&key_file, key).expect("write key");
    (cert_file, key_file, cert)
}

/// A TLS connection to `addr` as `localhost`, trusting only `ca_pem`, offering `alpn`.
pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("PEM")).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// One HTTP/2 connection.
#[derive(Clone)]
pub struct H2Client {
    send: SendRequest<Full<Bytes>>,
    base: String,
}

impl H2Client {
    /// HTTP/2 over TLS (ALPN `h2`), trusting only `ca_pem`.
    pub async fn tls(addr: SocketAddr, ca_pem: &str) -> Self {
        let tls = tls_connect(addr, ca_pem, &[b"h2"]).await.expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server chose h2");
        Self::over(tls, format!("https://localhost:{}", addr.port())).await
    }

    /// h2c with prior knowledge on a plain port.
    pub async fn h2c(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::over(tcp, format!("http://{addr}")).await
    }

    async fn over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S, base: String) -> Self {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        Self { send, base }
    }

    /// Sends a request; the answer's status and body (not yet read).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> http::Response<hyper::body::Incoming> {
        let mut req = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let mut send = self.send.clone();
        send.ready().await.expect("connection ready");
        send.send_request(req.body(body).expect("request")).await.expect("response")
    }

    /// Status and JSON body of a request.
    pub async fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self.request(method, path, body).await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Creates an `ALL` broadcast with `content`; asserts 201 and returns its id.
    pub async fn publish(&self, content: &str) -> i64 {
        let body = serde_json::json!({"senderId": "admin-1", "content": content, "targetType": "ALL"});
        let (status, created) = self.json("POST", "/api/admin/broadcasts", Some(body)).await;
        assert_eq!(status, 201, "create failed: {created}");
        created["id"].as_i64().expect("id")
    }

    /// Opens a stream for `user` on this connection.
    pub async fn connect(&self, user: &str) -> SseClient {
        let resp = self.request("GET", &format!("/api/user/sse/connect?userId={user}"), None).await;
        assert_eq!(resp.status(), 200, "connect {user}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseClient::from_stream(resp.into_body().into_data_stream())
    }
}
