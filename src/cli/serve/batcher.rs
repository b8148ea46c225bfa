//! Dynamic batching: one inference thread takes preprocessed images from a
//! bounded queue, up to `max_batch` at a time, waiting at most `max_wait`
//! after the first for more, runs them as one forward pass and answers each
//! request. A full queue refuses at once (the caller answers 503) instead of
//! queueing without limit.
//!
//! A failure of the batch (a panic, weights that overflow) is not charged to
//! every request in it: the images are run again one by one, so only the one
//! at fault fails.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lcnet_zoo::{Classifier, Prediction, SizedImage};
use tokio::sync::oneshot;

use super::metrics::Metrics;

/// What a queued image gets back.
pub type Answer = Result<Prediction, String>;

/// An image, resized to the network's input, waiting for it.
struct Job {
    image: SizedImage,
    /// Test hook (`--inject-faults`): what to do wrong with this image.
    fault: Option<Fault>,
    reply: oneshot::Sender<Answer>,
}

/// Faults a test can ask for, to check that one request's failure stays its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic inside the forward pass of the batch holding this image.
    Panic,
    /// Hold the worker for this long before the batch runs (fills the queue).
    Slow(Duration),
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Largest batch.
    pub max_batch: usize,
    /// Longest wait for more images after the first arrived.
    pub max_wait: Duration,
    /// Images that may wait; more are refused.
    pub queue: usize,
}

/// The sending side, shared by the request handlers.
#[derive(Clone)]
pub struct Batcher {
    queue: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

/// The image was refused: the queue is full.
#[derive(Debug)]
pub struct QueueFull;

impl Batcher {
    /// Starts the inference thread; it ends once every `Batcher` clone is
    /// dropped and the queue is empty.
    pub fn start(classifier: Arc<Classifier>, policy: Policy, metrics: Arc<Metrics>) -> (Batcher, JoinHandle<()>) {
        let (queue, jobs) = mpsc::sync_channel(policy.queue);
        let worker_metrics = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("lcnet-inference".into())
            .spawn(move || work(&classifier, policy, &jobs, &worker_metrics))
            .expect("spawning the inference thread");
        (Batcher { queue, metrics }, worker)
    }

    /// Queues one image; the answer comes on the returned channel.
    pub fn submit(&self, image: SizedImage, fault: Option<Fault>) -> Result<oneshot::Receiver<Answer>, QueueFull> {
        let (reply, answer) = oneshot::channel();
        // Counted before sending: the worker may take it at once.
        self.metrics.queue_depth.inc();
        match self.queue.try_send(Job { image, fault, reply }) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.queue_depth.dec();
                self.metrics.rejected.inc();
                Err(QueueFull)
            }
        }
    }
}

/// The inference thread: batch, run, answer, until the queue closes.
fn work(classifier: &Classifier, policy: Policy, jobs: &Receiver<Job>, metrics: &Metrics) {
    while let Some(batch) = next_batch(jobs, policy) {
        metrics.queue_depth.dec_by(batch.len() as i64);
        if let Some(Fault::Slow(pause)) = batch.iter().find_map(|job| job.fault) {
            std::thread::sleep(pause);
        }
        let started = Instant::now();
        metrics.batch_size.observe(batch.len() as f64);
        let (images, waiting): (Vec<SizedImage>, Vec<_>) =
            batch.into_iter().map(|job| (job.image, (job.fault, job.reply))).unzip();
        let (faults, replies): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
        let answers = run_isolated(classifier, &images, &faults);
        drop(images);
        metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        for (reply, answer) in replies.into_iter().zip(answers) {
            // The client may have gone (timeout, disconnect): nothing to do.
            let _ = reply.send(answer);
        }
    }
}

/// Blocks for the first image, then gathers more until the batch is full or
/// `max_wait` has passed; `None` once the queue is closed and empty.
fn next_batch(jobs: &Receiver<Job>, policy: Policy) -> Option<Vec<Job>> {
    let first = jobs.recv().ok()?;
    let deadline = Instant::now() + policy.max_wait;
    let mut batch = vec![first];
    while batch.len() < policy.max_batch {
        // Images already waiting join without delay, even past the deadline.
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match jobs.recv_timeout(left) {
                    Ok(job) => batch.push(job),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
    }
    Some(batch)
}

/// Runs the batch; if it fails as a whole, each image alone, so that only
/// the image at fault gets an error.
fn run_isolated(classifier: &Classifier, images: &[SizedImage], faults: &[Option<Fault>]) -> Vec<Answer> {
    match run(classifier, images, faults) {
        Ok(predictions) => predictions.into_iter().map(Ok).collect(),
        Err(_) if images.len() > 1 => images
            .iter()
            .zip(faults)
            .map(|(image, fault)| {
                let alone = std::slice::from_ref(image);
                run(classifier, alone, std::slice::from_ref(fault)).map(|mut p| p.remove(0))
            })
            .collect(),
        Err(message) => vec![Err(message)],
    }
}

/// One forward pass over `images`, a panic caught and turned into an error.
fn run(classifier: &Classifier, images: &[SizedImage], faults: &[Option<Fault>]) -> Result<Vec<Prediction>, String> {
    let inject_panic = faults.contains(&Some(Fault::Panic));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if inject_panic {
            panic!("fault injected by the request (--inject-faults)");
        }
        classifier.classify_sized(images)
    }));
    match outcome {
        Ok(Ok(predictions)) => Ok(predictions),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("the forward pass panicked".to_string()),
    }
}
