//! `--allow-urls`: fetching an `image`/`file` given as a URL, as PaddleX's
//! `get_raw_bytes_async` does, bounded by the body limit and the request
//! timeout. Plain `http://` only: this build carries no TLS stack, so an
//! `https://` URL is refused with a message saying so.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::protocol::ApiError;

/// The body of `GET url`, at most `limit` bytes, within `timeout`.
pub async fn get(url: &str, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let uri: Uri = url.parse().map_err(|e| ApiError::bad_request(format!("`{url}` is not a valid URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(ApiError::unprocessable(format!(
            "`{url}`: only http:// URLs are fetched (this build has no TLS); send the file as base64"
        )));
    }
    match tokio::time::timeout(timeout, fetch(&uri, limit)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::unprocessable(format!("`{url}`: no answer within {:.1} s", timeout.as_secs_f64()))),
    }
}

async fn fetch(uri: &Uri, limit: usize) -> Result<Bytes, ApiError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| ApiError::unprocessable(format!("`{uri}`: {what}: {e}"));
    let host = uri.host().ok_or_else(|| ApiError::bad_request(format!("`{uri}` has no host")))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| failed("cannot connect", &e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| failed("HTTP error", &e))?;
    tokio::spawn(connection);
    let authority = uri.authority().map_or(host.to_string(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed("bad request", &e))?;
    let response = sender.send_request(request).await.map_err(|e| failed("HTTP error", &e))?;
    if !response.status().is_success() {
        return Err(ApiError::unprocessable(format!("`{uri}` answered {}", response.status())));
    }
    match Limited::new(response.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("`{uri}`: the file is larger than the limit of {limit} bytes (--body-limit)"),
        )),
        Err(e) => Err(failed("cannot read the body", &e)),
    }
}
