//! `GET /metrics`: Prometheus text format, through `prometheus-client`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, linear_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route (`/image-classification`, ...).
    pub endpoint: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// The labels of a request's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The route.
    pub endpoint: String,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by endpoint and status (errors are the non-200s).
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from request to answer, by endpoint.
    pub latency: Family<EndpointLabels, Histogram>,
    /// Images per forward pass.
    pub batch_size: Histogram,
    /// Seconds per forward pass.
    pub batch_seconds: Histogram,
    /// Images preprocessed and waiting for the inference worker.
    pub queue_depth: Gauge,
    /// Requests refused with 503 because the queue was full.
    pub rejected: Counter,
}

impl Metrics {
    /// The metrics, registered under `lcnet_`; `max_batch` sizes the
    /// batch-size buckets (one per size).
    pub fn new(max_batch: usize) -> Self {
        let mut registry = Registry::with_prefix("lcnet");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by endpoint and status", requests.clone());
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "Seconds from request to answer", latency.clone());
        let batch_size = Histogram::new(linear_buckets(1.0, 1.0, max_batch.clamp(1, 64) as u16));
        registry.register("batch_size", "Images per forward pass", batch_size.clone());
        let batch_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 12));
        registry.register("batch_duration_seconds", "Seconds per forward pass", batch_seconds.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Preprocessed images waiting for the inference worker", queue_depth.clone());
        let rejected = Counter::default();
        registry.register("queue_rejected", "Requests refused (503) because the queue was full", rejected.clone());
        Metrics { registry, requests, latency, batch_size, batch_seconds, queue_depth, rejected }
    }

    /// Counts a finished request.
    pub fn record(&self, endpoint: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { endpoint: endpoint.to_string(), status }).inc();
        self.latency.get_or_create(&EndpointLabels { endpoint: endpoint.to_string() }).observe(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}
