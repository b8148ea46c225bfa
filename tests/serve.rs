//! `lcnet serve` end to end: the server started on an ephemeral loopback
//! port, spoken to over HTTP as PaddleX's clients speak to PaddleX serving.
//! The expected answers are the pages' true angles (examples/pages holds one
//! page turned 0/90/180/270 degrees clockwise) and PaddleX's schemas.
#![cfg(all(unix, feature = "serve"))]

mod common;

use std::time::Duration;

use base64::Engine;
use common::server::{Answer, Server};
use common::ROOT;
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn page_bytes(angle: u16) -> Vec<u8> {
    std::fs::read(format!("{ROOT}/examples/pages/page_{angle}.png")).unwrap()
}

/// The page turned 90 degrees, as a small JPEG (fast to send and decode).
fn small_page_90() -> Vec<u8> {
    small_page_90_as(image::ImageFormat::Jpeg)
}

fn small_page_90_as(format: image::ImageFormat) -> Vec<u8> {
    let page = image::load_from_memory(&page_bytes(90)).unwrap();
    let small = page.resize(440, 440, image::imageops::FilterType::Triangle);
    let mut bytes = Vec::new();
    small.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
    bytes
}

/// PaddleX's error envelope with `status`, its message containing `needle`.
fn assert_error(answer: &Answer, status: u16, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["errorCode"], status, "{body}");
    let message = body["errorMsg"].as_str().unwrap();
    assert!(message.contains(needle), "`{message}` should contain `{needle}`");
    assert_eq!(body["logId"].as_str().unwrap().len(), 36, "a UUID log id: {body}");
    assert!(body.get("result").is_none(), "{body}");
}

fn label(answer: &Answer) -> String {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["result"]["categories"][0]["name"].as_str().unwrap().to_string()
}

#[test]
fn paddlex_client_requests_get_paddlex_answers() {
    let server = Server::start(&[]);

    // GET /health as PaddleX's _app.py answers it.
    let health = server.get("/health").json();
    assert_eq!((health["errorCode"].clone(), health["errorMsg"].clone()), (json!(0), json!("Healthy")));

    // PaddleX's documented image-classification client: {"image": base64}, reads result.categories.
    for angle in [0, 90, 180, 270] {
        let answer = server.post("/image-classification", &json!({"image": b64(&page_bytes(angle))}));
        let body = answer.json();
        assert_eq!((body["errorCode"].clone(), body["errorMsg"].clone()), (json!(0), json!("Success")), "{body}");
        let categories = body["result"]["categories"].as_array().unwrap();
        // No topk: five asked, the four classes there are, most probable first.
        assert_eq!(categories.len(), 4);
        assert_eq!(categories[0]["name"], angle.to_string());
        assert_eq!(categories[0]["id"], [0, 90, 180, 270].iter().position(|&a| a == angle).unwrap());
        let scores: Vec<f64> = categories.iter().map(|c| c["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]) && (scores.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        assert!(scores[0] > 0.9, "{scores:?}");
    }
    let top1 = server.post("/image-classification", &json!({"image": b64(&page_bytes(180)), "topk": 1}));
    assert_eq!(top1.json()["result"]["categories"].as_array().unwrap().len(), 1);

    // PaddleX's documented document-preprocessing client: {"file", "fileType": 1}, reads
    // docPreprocessingResults[i].prunedResult and writes outputImage's bytes to a file.
    let input = image::load_from_memory(&page_bytes(90)).unwrap();
    let answer = server.post("/document-preprocessing", &json!({"file": b64(&page_bytes(90)), "fileType": 1}));
    let body = answer.json();
    assert_eq!(body["errorCode"], 0, "{body}");
    let result = &body["result"];
    assert_eq!(result["dataInfo"], json!({"width": input.width(), "height": input.height(), "type": "image"}));
    let page = &result["docPreprocessingResults"][0];
    assert_eq!(
        page["prunedResult"],
        json!({"model_settings": {"use_doc_orientation_classify": true, "use_doc_unwarping": false}, "angle": 90})
    );
    let output = base64::engine::general_purpose::STANDARD.decode(page["outputImage"].as_str().unwrap()).unwrap();
    assert_eq!(image::guess_format(&output).unwrap(), image::ImageFormat::Png);
    // Turned back: the page turned 90 degrees clockwise, turned 90 counter-clockwise.
    let upright = image::load_from_memory(&output).unwrap();
    assert_eq!(upright.to_rgb8(), input.rotate270().to_rgb8());
    assert!(page.get("inputImage").is_none() && page.get("docPreprocessingImage").is_none());

    // visualize adds both JPEGs; classification off leaves the page as it is, angle -1.
    let visual = server.post(
        "/document-preprocessing",
        &json!({"file": b64(&page_bytes(270)), "fileType": 1, "visualize": true, "useDocOrientationClassify": false}),
    );
    let page = &visual.json()["result"]["docPreprocessingResults"][0];
    assert_eq!(page["prunedResult"]["angle"], -1);
    for key in ["inputImage", "docPreprocessingImage"] {
        let jpeg = base64::engine::general_purpose::STANDARD.decode(page[key].as_str().unwrap()).unwrap();
        assert_eq!(image::guess_format(&jpeg).unwrap(), image::ImageFormat::Jpeg, "{key}");
    }
    let kept = base64::engine::general_purpose::STANDARD.decode(page["outputImage"].as_str().unwrap()).unwrap();
    let original = image::load_from_memory(&page_bytes(270)).unwrap();
    assert_eq!(image::load_from_memory(&kept).unwrap().to_rgb8(), original.to_rgb8());

    // The demo page and the metrics.
    let demo = server.get("/");
    assert_eq!(demo.status, 200);
    assert!(
        demo.text().contains("/document-preprocessing")
            && demo.header("content-type").unwrap().starts_with("text/html")
    );
    assert_eq!(server.metric("lcnet_http_requests_total"), 9.0);
    // One forward pass each: four pages, topk 1, the page preprocessed (not the one left as it is).
    assert_eq!(server.metric("lcnet_batch_size_sum"), 6.0);
}

#[test]
fn every_error_class_gets_paddlex_envelope() {
    let server = Server::start(&["--body-limit", "1000000", "--max-pixels", "900000", "--inject-faults"]);
    let classify = |body: Value| server.post("/image-classification", &body);
    let document = |body: Value| server.post("/document-preprocessing", &body);
    let png = b64(&page_bytes(0));
    let small = b64(&small_page_90());

    assert_error(&server.request("POST", "/image-classification", b"{\"image\": "), 400, "not valid JSON");
    assert_error(&classify(json!({"image": "this is not base64!"})), 400, "`image` is not valid base64");
    assert_error(&classify(json!({"image": b64(b"%PDF-1.4 not an image")})), 400, "not a PNG or JPEG");
    // A truncated PNG (cv2 and the jpeg decoder both fill a truncated JPEG with grey instead).
    assert_error(
        &classify(json!({"image": b64(&small_page_90_as(image::ImageFormat::Png)[..3000])})),
        400,
        "cannot decode",
    );
    // Too large: the body (1.0 MB limit), then the pixels (the page is 1100x850 = 935,000).
    let big = vec![b' '; 1_500_000];
    assert_error(&server.request("POST", "/image-classification", &big), 413, "larger than the limit");
    assert_error(&classify(json!({"image": png})), 422, "the limit is 0.9 Mpixel");
    // Fields refused as PaddleX's pydantic schema refuses them.
    let missing = classify(json!({"topk": 3}));
    assert_error(&missing, 422, "Field required");
    let errors: Value = serde_json::from_str(missing.json()["errorMsg"].as_str().unwrap()).unwrap();
    assert_eq!(errors, json!([{"type": "missing", "loc": "body.image", "msg": "Field required"}]));
    assert_error(&classify(json!({"image": small, "topk": 0})), 422, "greater than 0");
    assert_error(&classify(json!(["image"])), 422, "valid dictionary");
    assert_error(&classify(json!({"image": "http://127.0.0.1:9/page.png"})), 422, "--allow-urls");
    // The document preprocessor: unwarping and PDFs are not provided; fileType is needed.
    assert_error(&document(json!({"file": small, "fileType": 1, "useDocUnwarping": true})), 422, "unwarping");
    assert_error(&document(json!({"file": small, "fileType": 0})), 422, "PDF");
    assert_error(&document(json!({"file": small})), 422, "File type cannot be determined");
    assert_error(&document(json!({"file": small, "fileType": 2})), 422, "Input should be 0 or 1");
    assert_error(&server.get("/nowhere"), 404, "Not Found");
    // A panic while handling a request is that request's 500; the server goes on.
    assert_error(&classify(json!({"image": small, "lcnetFault": "panic-handler"})), 500, "Internal server error");
    assert_eq!(label(&classify(json!({"image": small}))), "90");
    assert_eq!(server.metric("lcnet_http_requests_total{endpoint=\"/image-classification\",status=\"400\"}"), 4.0);
}

#[test]
fn a_panic_in_a_batch_fails_only_its_own_request() {
    // A 300 ms window gathers the concurrent requests into one batch.
    let server = Server::start(&["--inject-faults", "--max-wait-ms", "300", "--max-batch", "8"]);
    let small = b64(&small_page_90());
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..6)
            .map(|i| {
                let fault = if i == 3 { json!("panic-batch") } else { Value::Null };
                let body = json!({"image": small, "lcnetFault": fault});
                let server = &server;
                scope.spawn(move || server.post("/image-classification", &body))
            })
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (i, answer) in answers.iter().enumerate() {
        if i == 3 {
            assert_error(answer, 500, "Internal server error");
        } else {
            assert_eq!(label(answer), "90");
        }
    }
    // They did share a batch: fewer batches than requests (the failed batch is counted once).
    assert!(server.metric("lcnet_batch_size_count") < 6.0, "{}", server.get("/metrics").text());
    assert!(server.log.lock().unwrap().contains("fault injected"));
}

#[test]
fn concurrent_requests_are_batched() {
    let server = Server::start(&["--max-wait-ms", "20"]);
    let small = b64(&small_page_90());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..4 {
                    assert_eq!(label(&server.post("/image-classification", &json!({"image": small}))), "90");
                }
            });
        }
    });
    let (images, batches) = (server.metric("lcnet_batch_size_sum"), server.metric("lcnet_batch_size_count"));
    assert_eq!(images, 32.0);
    assert!(images / batches > 1.5, "{images} images in {batches} batches");
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let server = Server::start(&["--inject-faults", "--queue", "2", "--max-batch", "1", "--max-wait-ms", "0"]);
    let small = b64(&small_page_90());
    std::thread::scope(|scope| {
        // Holds the worker for 2 s; meanwhile two images fit the queue and the rest are refused.
        let slow = scope.spawn(|| server.post("/image-classification", &json!({"image": small, "lcnetFault": "slow"})));
        std::thread::sleep(Duration::from_millis(150));
        let rest: Vec<_> =
            (0..6).map(|_| scope.spawn(|| server.post("/image-classification", &json!({"image": small})))).collect();
        let answers: Vec<Answer> = rest.into_iter().map(|r| r.join().unwrap()).collect();
        let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
        assert!(busy.len() >= 3, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
        for answer in &busy {
            assert_error(answer, 503, "queue is full");
            assert_eq!(answer.header("retry-after"), Some("1"));
        }
        assert!(answers.iter().all(|a| a.status == 503 || label(a) == "90"));
        assert_eq!(label(&slow.join().unwrap()), "90");
    });
    assert!(server.metric("lcnet_queue_rejected_total") >= 3.0);
    assert_eq!(server.metric("lcnet_queue_depth"), 0.0);
}

#[test]
fn a_request_over_the_timeout_gets_504() {
    let server = Server::start(&["--inject-faults", "--timeout", "1"]);
    let slow = server.post("/image-classification", &json!({"image": b64(&small_page_90()), "lcnetFault": "slow"}));
    assert_error(&slow, 504, "timed out");
    // The worker is still held by the slow image for 1 s more.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(label(&server.post("/image-classification", &json!({"image": b64(&small_page_90())}))), "90");
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_0() {
    let mut server = Server::start(&["--inject-faults"]);
    let small = b64(&small_page_90());
    let in_flight = std::thread::scope(|scope| {
        let slow = scope.spawn(|| server.post("/image-classification", &json!({"image": small, "lcnetFault": "slow"})));
        std::thread::sleep(Duration::from_millis(150));
        server.terminate();
        slow.join().unwrap()
    });
    assert_eq!(label(&in_flight), "90");
    assert_eq!(server.wait(), Some(0));
    assert!(std::net::TcpStream::connect(&server.address).is_err(), "still accepting after shutdown");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("shutting down") && log.contains("stopped"), "{log}");
}

#[test]
fn urls_are_fetched_only_when_allowed() {
    // A one-shot HTTP file server on loopback holding the page.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/page_90.jpg", listener.local_addr().unwrap());
    let jpeg = small_page_90();
    let files = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).unwrap();
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", jpeg.len());
        stream.write_all(&[reply.as_bytes(), &jpeg].concat()).unwrap();
    });
    let server = Server::start(&["--allow-urls"]);
    assert_eq!(label(&server.post("/image-classification", &json!({"image": url}))), "90");
    files.join().unwrap();
    assert_error(&server.post("/image-classification", &json!({"image": "https://example.com/a.png"})), 422, "no TLS");
}

#[test]
fn five_thousand_requests_with_bad_ones_mixed_in() {
    let server = Server::start(&[]);
    let good = json!({"image": b64(&small_page_90())}).to_string();
    let truncated = json!({"image": b64(&page_bytes(90)[..3000])}).to_string();
    let bad: [&[u8]; 4] =
        [b"{\"image\": ", b"{\"image\": \"@@@@\"}", b"{\"image\": \"aGVsbG8=\"}", truncated.as_bytes()];
    let total = 5000;
    let clients = 4;
    let mut rss = Vec::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                let (server, good, bad) = (&server, &good, &bad);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for i in (client..total).step_by(clients) {
                        let is_bad = i % 10 == 7;
                        let body = if is_bad { bad[i / 10 % bad.len()] } else { good.as_bytes() };
                        let answer = server.request("POST", "/image-classification", body);
                        let ok =
                            if is_bad { answer.status == 400 } else { answer.status == 200 && label(&answer) == "90" };
                        if !ok {
                            failures.push((i, answer.status, answer.text()));
                        }
                    }
                    failures
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            rss.push(server.rss_kb());
            std::thread::sleep(Duration::from_millis(250));
        }
        for worker in workers {
            let failures = worker.join().unwrap();
            assert!(failures.is_empty(), "{} failed, first: {:?}", failures.len(), failures.first());
        }
    });
    assert_eq!(server.metric("lcnet_http_requests_total"), total as f64);
    // RSS steady: after the first fifth (allocator warm-up), the last fifth is no higher than
    // the second fifth plus 10 % (a leak of even 2 kB per request would add 10 MB).
    assert!(rss.len() >= 10, "the run was too short to sample: {rss:?}");
    let fifth = rss.len() / 5;
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len() as f64;
    let (early, late) = (mean(&rss[fifth..2 * fifth]), mean(&rss[rss.len() - fifth..]));
    eprintln!("RSS kB: early {early:.0}, late {late:.0}, peak {}", rss.iter().max().unwrap());
    assert!(late <= early * 1.10, "RSS grew from {early:.0} kB to {late:.0} kB: {rss:?}");
}

#[test]
fn the_demo_page_is_one_self_contained_file() {
    let server = Server::start(&[]);
    let html = server.get("/").text();
    // No external assets: nothing is loaded from another origin.
    for needle in ["http://", "https://", "src=\"//", "@import"] {
        assert!(!html.contains(needle), "the demo page refers to {needle}");
    }
}
