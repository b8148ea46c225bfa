//! The HTTP routes: PaddleX's two inference endpoints, `/health`,
//! `/metrics` and the demo page, with the limits every request passes.
//!
//! A request's path: the body (at most `--body-limit` bytes, else 413) is
//! parsed as JSON (400) and its fields checked as PaddleX's schema does
//! (422); the file's base64 is decoded (400) and the image decoded within
//! the pixel limit and resized to the network's input on tokio's blocking
//! pool (400, 422); the 8-bit input joins the inference queue (503 when full) and the answer comes
//! back in PaddleX's envelope. A panic anywhere becomes this request's 500.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use image::DynamicImage;
use lcnet_zoo::{Classifier, ImageProblem, Prediction, SizedImage};
use serde_json::{json, Map, Value};
use tower_http::catch_panic::CatchPanicLayer;

use super::batcher::{Batcher, Fault};
use super::fields;
use super::metrics::Metrics;
use super::protocol::{ApiError, Category, ClassifyResult, DocPage, DocResult, ImageInfo, Success};
use crate::cli::upright::{label_angle, turn_back};

/// Classes answered when a request has no `topk`.
const DEFAULT_TOPK: usize = 5;
/// PaddleX's `max_output_img_size`: larger upright pages are scaled down to fit.
const MAX_OUTPUT_SIDE: u32 = 2000;
/// JPEG quality of the `visualize` images.
const JPEG_QUALITY: u8 = 90;

/// What every handler shares.
pub struct AppState {
    /// The model.
    pub classifier: Arc<Classifier>,
    /// The inference queue.
    pub batcher: Batcher,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Server settings.
    pub options: Options,
    /// Permits to decode and preprocess an image: one per core.
    pub image_work: tokio::sync::Semaphore,
}

/// The settings the routes apply.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Longest time a request may take.
    pub timeout: Duration,
    /// Whether `image`/`file` may be a URL the server fetches.
    pub allow_urls: bool,
    /// Honour the `lcnetFault` test field.
    pub inject_faults: bool,
}

/// The router, with its limits, panic guard and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.options.body_limit;
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/image-classification", post(classify))
        .route("/document-preprocessing", post(preprocess_document))
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(|_panic| ApiError::internal().into_response()))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Times every request out after `--timeout` and counts it in the metrics.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = request.extensions().get::<MatchedPath>().map_or("other", |path| path.as_str()).to_string();
    let timeout = state.options.timeout;
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("Request timed out after {:.1} s (--timeout)", timeout.as_secs_f64()),
        )
        .into_response(),
    };
    state.metrics.record(&endpoint, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn health() -> Response {
    super::protocol::healthy()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}

/// `POST /image-classification`: `{"image", "topk"?, "visualize"?}`.
async fn classify(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Success<ClassifyResult>, ApiError> {
    let mut body = json_body(body)?;
    let fields = fields::object(&body)?;
    fields::string(fields, "image")?;
    let topk = fields::opt_int(fields, "topk")?;
    if topk.is_some_and(|k| k <= 0) {
        return Err(ApiError::invalid_field("greater_than", "body.topk", "Input should be greater than 0"));
    }
    fields::opt_bool(fields, "visualize")?;
    let fault = state.fault(fields)?;
    let file = state.file(take_string(&mut body, "image"), "image").await?;
    drop(body);
    let classifier = state.classifier.clone();
    let sized = state
        .blocking(move || {
            let image = decode(&classifier, &file.bytes("image")?, "image")?;
            drop(file);
            classifier.size_image_owned(image).map_err(image_error)
        })
        .await?;
    let prediction = state.infer(sized, fault).await?;
    let k = topk.map_or(DEFAULT_TOPK, |k| usize::try_from(k).unwrap_or(usize::MAX));
    let categories = prediction
        .top(k)
        .into_iter()
        .map(|class| Category { id: class.index, name: class.label, score: class.prob })
        .collect();
    Ok(Success::new(super::protocol::new_log_id(), ClassifyResult { categories }))
}

/// `POST /document-preprocessing`: `{"file", "fileType", "useDocOrientationClassify"?,
/// "useDocUnwarping"?, "visualize"?}`; the orientation part of PaddleX's
/// document preprocessor.
async fn preprocess_document(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Success<DocResult>, ApiError> {
    let mut body = json_body(body)?;
    let fields = fields::object(&body)?;
    let is_url = is_url(fields::string(fields, "file")?);
    let file_type = fields::opt_int(fields, "fileType")?;
    let classify = fields::opt_bool(fields, "useDocOrientationClassify")?.unwrap_or(true);
    let unwarp = fields::opt_bool(fields, "useDocUnwarping")?.unwrap_or(false);
    let visualize = fields::opt_bool(fields, "visualize")?.unwrap_or(false);
    let fault = state.fault(fields)?;
    match file_type {
        Some(1) => {}
        Some(0) => {
            return Err(ApiError::unprocessable(
                "PDF input (fileType 0) is not supported by lcnet serve; send each page as an image (fileType 1)",
            ))
        }
        Some(_) => return Err(ApiError::invalid_field("literal_error", "body.fileType", "Input should be 0 or 1")),
        None if is_url => {}
        None => return Err(ApiError::unprocessable("File type cannot be determined")),
    }
    if unwarp {
        return Err(ApiError::unprocessable(
            "Document unwarping (useDocUnwarping: true) is not provided by lcnet serve; send useDocUnwarping: false",
        ));
    }
    let angles = state.angles()?;
    let file = state.file(take_string(&mut body, "file"), "file").await?;
    drop(body);
    let classifier = state.classifier.clone();
    let (image, sized) = state
        .blocking(move || {
            let image = decode(&classifier, &file.bytes("file")?, "file")?;
            drop(file);
            let sized = if classify { Some(classifier.size_image(&image).map_err(image_error)?) } else { None };
            Ok((image, sized))
        })
        .await?;
    let angle = match sized {
        Some(sized) => Some(angles[state.infer(sized, fault).await?.index]),
        None => None,
    };
    let data_info = ImageInfo { width: image.width(), height: image.height(), kind: "image" };
    let page = state.blocking(move || upright_page(image, angle, classify, visualize)).await?;
    Ok(Success::new(super::protocol::new_log_id(), DocResult { doc_preprocessing_results: vec![page], data_info }))
}

/// The page turned back by `angle`, as PaddleX's result: the PNG output
/// (scaled to fit 2000x2000), the pruned result, the JPEGs when visualizing.
fn upright_page(input: DynamicImage, angle: Option<u16>, classify: bool, visualize: bool) -> Result<DocPage, ApiError> {
    let input_image = visualize.then(|| jpeg_base64(&input)).transpose()?;
    let upright = fit(turn_back(input, angle.unwrap_or(0)), MAX_OUTPUT_SIDE);
    let mut png = Vec::new();
    upright
        .write_with_encoder(image::codecs::png::PngEncoder::new_with_quality(
            &mut png,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        ))
        .map_err(|_| ApiError::internal())?;
    let pruned_result = json!({
        "model_settings": {"use_doc_orientation_classify": classify, "use_doc_unwarping": false},
        // PaddleX reports -1 when the orientation is not classified.
        "angle": angle.map_or(-1, i32::from),
    });
    Ok(DocPage {
        output_image: base64::engine::general_purpose::STANDARD.encode(&png),
        pruned_result,
        doc_preprocessing_image: visualize.then(|| jpeg_base64(&upright)).transpose()?,
        input_image,
    })
}

/// `image` scaled down (aspect kept) so that neither side exceeds `max_side`,
/// as PaddleX's `postprocess_image` does.
fn fit(image: DynamicImage, max_side: u32) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    if w <= max_side && h <= max_side {
        return image;
    }
    let factor = max_side as f64 / w.max(h) as f64;
    let size = |side: u32| ((side as f64 * factor) as u32).max(1);
    image.resize_exact(size(w), size(h), image::imageops::FilterType::Triangle)
}

fn jpeg_base64(image: &DynamicImage) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|_| ApiError::internal())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(&bytes))
}

impl AppState {
    /// The clockwise angle of each class, or a refusal when the model does
    /// not classify orientation.
    fn angles(&self) -> Result<Vec<u16>, ApiError> {
        let labels = self.classifier.labels();
        labels.iter().map(|label| label_angle(label)).collect::<Option<Vec<u16>>>().ok_or_else(|| {
            ApiError::unprocessable(format!(
                "the model `{}` does not classify orientation (its labels are not angles); \
                 start the server with --model doc_ori",
                self.classifier.name()
            ))
        })
    }

    /// An `image`/`file` field's file: fetched now when it is a URL (and
    /// URLs are allowed), else its base64 kept to be decoded on the
    /// blocking pool.
    async fn file(&self, text: String, field: &str) -> Result<File, ApiError> {
        if !is_url(&text) {
            return Ok(File::Base64(text));
        }
        if !self.options.allow_urls {
            return Err(ApiError::unprocessable(format!(
                "`{field}` is a URL; this server does not fetch URLs (start it with --allow-urls); \
                 send the file's bytes as base64"
            )));
        }
        Ok(File::Fetched(super::fetch::get(&text, self.options.body_limit, self.options.timeout).await?))
    }

    /// Runs `work` on tokio's blocking pool, at most one image per core at
    /// a time (more only holds more decoded images in memory); a panic
    /// there is this request's 500.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.image_work.acquire().await.map_err(|_| ApiError::internal())?;
        tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| Err(ApiError::internal()))
    }

    /// The `lcnetFault` test field, honoured only with `--inject-faults`.
    fn fault(&self, fields: &Map<String, Value>) -> Result<Option<Fault>, ApiError> {
        if !self.options.inject_faults {
            return Ok(None);
        }
        match fields.get("lcnetFault").and_then(Value::as_str) {
            None => Ok(None),
            Some("panic-handler") => panic!("fault injected by the request (--inject-faults)"),
            Some("panic-batch") => Ok(Some(Fault::Panic)),
            Some("slow") => Ok(Some(Fault::Slow(Duration::from_secs(2)))),
            Some(other) => Err(ApiError::bad_request(format!("unknown lcnetFault `{other}`"))),
        }
    }

    /// Queues the image and waits for its prediction.
    async fn infer(&self, sized: SizedImage, fault: Option<Fault>) -> Result<Prediction, ApiError> {
        let answer = self
            .batcher
            .submit(sized, fault)
            .map_err(|_| ApiError::busy("The server is busy: the inference queue is full; retry shortly"))?;
        match answer.await {
            Ok(Ok(prediction)) => Ok(prediction),
            Ok(Err(message)) => {
                eprintln!("lcnet serve: inference failed: {message}");
                Err(ApiError::internal())
            }
            Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The server is shutting down")),
        }
    }
}

/// The file a request carries.
enum File {
    /// Its base64, not decoded yet.
    Base64(String),
    /// Its bytes, fetched from a URL.
    Fetched(Bytes),
}

impl File {
    /// The file's bytes; `field` names it in a refusal.
    fn bytes(&self, field: &str) -> Result<std::borrow::Cow<'_, [u8]>, ApiError> {
        match self {
            File::Base64(text) => decode_base64(text)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| ApiError::bad_request(format!("`{field}` is not valid base64: {e}"))),
            File::Fetched(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
        }
    }
}

/// Moves a string field (checked present) out of the body: the file's
/// base64 is most of it, and is not copied.
fn take_string(body: &mut Value, name: &str) -> String {
    match body.get_mut(name).map(Value::take) {
        Some(Value::String(text)) => text,
        _ => unreachable!("`{name}` was checked to be a string"),
    }
}

/// Base64 as PaddleX's clients send it: standard alphabet, padding optional,
/// line breaks ignored.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let engine = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
    if text.contains(['\n', '\r', ' ']) {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        engine.decode(compact)
    } else {
        engine.decode(text)
    }
}

/// PaddleX's `is_url`: an http(s) URL.
fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// The body as JSON, or the envelope for a body too large (413) or not JSON (400).
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body is larger than the limit (--body-limit)")
        }
        status => ApiError::new(status, rejection.body_text()),
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}")))
}

/// Decodes `bytes` within the classifier's limits.
fn decode(classifier: &Classifier, bytes: &[u8], field: &str) -> Result<DynamicImage, ApiError> {
    let (image, _format) =
        lcnet_zoo::decode_bytes(bytes, &format!("`{field}`"), classifier.decoding()).map_err(image_error)?;
    Ok(image)
}

/// An image refusal: too large is PaddleX's 422, anything else not an image (400).
fn image_error(err: lcnet_zoo::Error) -> ApiError {
    match &err {
        lcnet_zoo::Error::Image {
            problem:
                ImageProblem::TooManyPixels { .. }
                | ImageProblem::SideTooLarge { .. }
                | ImageProblem::TooManyBytes { .. }
                | ImageProblem::AspectRatio { .. },
            ..
        } => ApiError::unprocessable(err.to_string()),
        lcnet_zoo::Error::Image { .. } => ApiError::bad_request(err.to_string()),
        _ => {
            eprintln!("lcnet serve: {err}");
            ApiError::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_clients_send_it() {
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("aGk").unwrap(), b"hi");
        assert_eq!(decode_base64("aG\nk=").unwrap(), b"hi");
        assert!(decode_base64("a$k=").is_err());
    }

    #[test]
    fn large_pages_fit_paddlex_output_size() {
        let page = DynamicImage::new_rgb8(3000, 1500);
        let fitted = fit(page, 2000);
        assert_eq!((fitted.width(), fitted.height()), (2000, 1000));
        let small = fit(DynamicImage::new_rgb8(20, 10), 2000);
        assert_eq!((small.width(), small.height()), (20, 10));
    }
}
