//! `lcnet serve`: PaddleX's serving protocol over HTTP (tokio, axum), with
//! dynamic batching. The server is stateless: run as many replicas as
//! needed behind any load balancer, `/health` for readiness.

mod batcher;
mod fetch;
mod fields;
mod metrics;
mod protocol;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lcnet_zoo::{Decoding, ImageLimits};

use batcher::{Batcher, Policy};
use metrics::Metrics;
use routes::{AppState, Options};

/// Arguments of `lcnet serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Endpoints (PaddleX's serving protocol):\n  \
    POST /image-classification     {\"image\": <base64>, \"topk\": 5} -> result.categories [{id, name, score}]\n  \
    POST /document-preprocessing   {\"file\": <base64>, \"fileType\": 1} -> result.docPreprocessingResults[0]\n                                 \
    (prunedResult.angle, outputImage: the page upright, PNG base64)\n  \
    GET  /health                   readiness: {\"errorCode\": 0, \"errorMsg\": \"Healthy\"}\n  \
    GET  /metrics                  Prometheus: requests, latency, batch sizes, queue depth\n  \
    GET  /                         a demo page: drop an image, see the answer\n\n\
    Examples:\n  \
    lcnet serve                                    # doc_ori on http://127.0.0.1:8080\n  \
    lcnet serve --host 0.0.0.0 --port 9000 --model textline_ori\n  \
    printf '{\"image\": \"%s\"}' \"$(base64 -w0 page.png)\" |\n    \
    curl -s localhost:8080/image-classification -H 'content-type: application/json' --data-binary @-\n\n\
    Errors come in PaddleX's envelope with errorCode = the HTTP status: 400 bad JSON, base64 or image,\n\
    413 body too large, 422 a field PaddleX's schema refuses or an image over --max-pixels, 503 queue full\n\
    (with Retry-After), 504 --timeout. SIGTERM or Ctrl-C: stop accepting, finish in-flight requests, exit 0.")]
pub struct Args {
    /// Preset or architecture (see `lcnet list`): `doc_ori` (the default), `textline_ori`, ...
    #[arg(long, short)]
    model: Option<String>,
    /// Checkpoint to serve instead of the embedded weights.
    #[arg(long, short)]
    weights: Option<PathBuf>,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (printed at start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Most images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    max_batch: u32,
    /// Longest wait, in milliseconds, for more images once one is ready.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=1000))]
    max_wait_ms: u64,
    /// Images that may wait for the network; beyond, requests get 503 at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    queue: u32,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 20 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1 << 31))]
    body_limit: u64,
    /// Refuse images larger than this many pixels (width x height), read from the header before decoding.
    #[arg(long, value_name = "N", default_value_t = ImageLimits::default().max_pixels,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    max_pixels: u64,
    /// Longest a request may take, in seconds (504 beyond).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Fetch `image`/`file` when it is an http:// URL (off: the server makes no requests of its own).
    #[arg(long)]
    allow_urls: bool,
    /// Do not turn images upright by their EXIF orientation tag.
    #[arg(long)]
    ignore_exif: bool,
    /// Worker threads of the forward pass (default: one per core).
    #[arg(long, value_parser = super::parse_threads)]
    threads: Option<usize>,
    /// Tests only: honour the `lcnetFault` request field (panics, slow batches).
    #[arg(long, hide = true)]
    inject_faults: bool,
}

/// Serves until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        anyhow::bail!("--timeout must be between 0 and 3600 seconds, got {}", args.timeout);
    }
    one_malloc_arena();
    super::set_threads(args.threads)?;
    let decoding = Decoding {
        limits: ImageLimits { max_pixels: args.max_pixels, ..Default::default() },
        apply_exif: !args.ignore_exif,
    };
    let classifier =
        Arc::new(super::open_classifier(args.model.as_deref(), args.weights.as_deref())?.with_decoding(decoding));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lcnet-http")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, classifier))
}

async fn serve(args: &Args, classifier: Arc<lcnet_zoo::Classifier>) -> anyhow::Result<()> {
    let policy = Policy {
        max_batch: args.max_batch as usize,
        max_wait: Duration::from_millis(args.max_wait_ms),
        queue: args.queue as usize,
    };
    let metrics = Arc::new(Metrics::new(policy.max_batch));
    let (batcher, worker) = Batcher::start(classifier.clone(), policy, metrics.clone());
    let options = Options {
        body_limit: args.body_limit as usize,
        timeout: Duration::from_secs_f64(args.timeout),
        allow_urls: args.allow_urls,
        inject_faults: args.inject_faults,
    };
    let name = classifier.name().to_string();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let image_work = tokio::sync::Semaphore::new(cores);
    let state = Arc::new(AppState { classifier, batcher, metrics, options, image_work });
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address: SocketAddr = listener.local_addr()?;
    eprintln!(
        "lcnet serve: {name} listening on http://{address} (batches of up to {}, queue {})",
        policy.max_batch, policy.queue
    );
    axum::serve(listener, routes::router(state)).with_graceful_shutdown(shutdown_signal()).await?;
    // Every handler has answered and the router (holding the last queue
    // sender) is gone: the inference thread drains and ends.
    worker.join().map_err(|_| anyhow::anyhow!("the inference thread panicked"))?;
    eprintln!("lcnet serve: stopped");
    Ok(())
}

/// glibc gives each thread that allocates its own heap (arena), and freed
/// image buffers stay in whichever arena held them: with the HTTP, decoding,
/// inference and rayon threads, peak RSS under load was 89 MB with the
/// default arenas and 65 MB with one, at the same throughput
/// (bench/README.md). A server's footprint is what replicas are sized by.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // this process's server threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    eprintln!("lcnet serve: shutting down: finishing the requests in flight");
}
