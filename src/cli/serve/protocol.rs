//! PaddleX's serving protocol: the JSON of requests, results and errors, as
//! the `paddlex` wheel (3.7) defines them in `paddlex/inference/serving/`:
//! `infra/models.py` (the envelope), `schemas/image_classification.py`,
//! `schemas/doc_preprocessor.py` with `schemas/shared/ocr.py` (requests and
//! results) and `basic_serving/_app.py` (`/health` and the error handlers).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One class of an answer (`schemas/shared/classification.py`).
#[derive(Debug, Serialize)]
pub struct Category {
    /// Class index.
    pub id: usize,
    /// Class label.
    pub name: String,
    /// Softmax probability.
    pub score: f32,
}

/// The result of `/image-classification`.
#[derive(Debug, Serialize)]
pub struct ClassifyResult {
    /// The most probable classes first.
    pub categories: Vec<Category>,
}

/// One page of `/document-preprocessing`'s result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocPage {
    /// The page turned upright, PNG base64 (PaddleX names it `output_img.png`).
    pub output_image: String,
    /// `{"model_settings": {...}, "angle": a}`, as PaddleX's `prune_result` leaves it.
    pub pruned_result: serde_json::Value,
    /// With `visualize`: the upright page, JPEG base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_preprocessing_image: Option<String>,
    /// With `visualize`: the input, JPEG base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_image: Option<String>,
}

/// `dataInfo` of an image input (`infra/models.py`, `ImageInfo`).
#[derive(Debug, Serialize)]
pub struct ImageInfo {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Always `"image"` (PDFs are not read here).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The result of `/document-preprocessing`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocResult {
    /// One entry per page (one for an image).
    pub doc_preprocessing_results: Vec<DocPage>,
    /// The input's size.
    pub data_info: ImageInfo,
}

/// The success envelope, `AIStudioResultResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Success<T> {
    log_id: String,
    result: T,
    error_code: u16,
    error_msg: &'static str,
}

impl<T: Serialize> Success<T> {
    /// `result` under a log id, `errorCode` 0, `errorMsg` "Success".
    pub fn new(log_id: String, result: T) -> Self {
        Success { log_id, result, error_code: 0, error_msg: "Success" }
    }
}

impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self)
    }
}

/// The envelope without a result, `AIStudioNoResultResponse`: errors (with
/// `errorCode` the HTTP status) and `/health`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoResult {
    log_id: String,
    error_code: u16,
    error_msg: String,
}

/// `GET /health`, as PaddleX answers it.
pub fn healthy() -> Response {
    json_response(StatusCode::OK, &NoResult { log_id: new_log_id(), error_code: 0, error_msg: "Healthy".into() })
}

/// A new log id: a random UUID, as PaddleX's `generate_log_id`.
pub fn new_log_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("protocol types serialize");
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request that failed: its HTTP status, its message, and for 503 when
/// to come back.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status, also the envelope's `errorCode`.
    pub status: StatusCode,
    /// The envelope's `errorMsg`.
    pub message: String,
    /// Seconds for `Retry-After` (503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after: None }
    }

    /// 400: a body that is not JSON, a string that is not base64, bytes
    /// that are not an image.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 422: a request PaddleX's schema or pipeline refuses (PaddleX's status
    /// for these).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 422 as PaddleX's validation handler writes it: `errorMsg` is a JSON
    /// list of `{type, loc, msg}`.
    pub fn invalid_field(kind: &str, loc: &str, msg: &str) -> Self {
        let errors = serde_json::json!([{ "type": kind, "loc": loc, "msg": msg }]);
        Self::unprocessable(errors.to_string())
    }

    /// 503 with `Retry-After: 1`: the queue is full.
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }

    /// 500, as PaddleX answers an unexpected failure.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = NoResult { log_id: new_log_id(), error_code: self.status.as_u16(), error_msg: self.message };
        let mut response = json_response(self.status, &body);
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_have_paddlex_field_names() {
        let ok = serde_json::to_value(Success::new("id".into(), ClassifyResult { categories: vec![] })).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"logId": "id", "result": {"categories": []}, "errorCode": 0, "errorMsg": "Success"})
        );
        let page = DocPage {
            output_image: "b64".into(),
            pruned_result: serde_json::json!({}),
            doc_preprocessing_image: None,
            input_image: None,
        };
        let keys: Vec<String> = serde_json::to_value(page).unwrap().as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["outputImage", "prunedResult"]);
    }
}
