//! Times each kernel on the real PP-LCNet x1.0 layer shapes at 224x224,
//! batch 1, and prints ms and GFLOP/s per layer kind.
//!
//! `cargo run --release -p lcnet-core --example layer_times [width]`

use std::time::Instant;

use lcnet_core::__private::kernels::{dwconv, pwconv, stem, Activation};

fn time<F: FnMut()>(mut f: F) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..21)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[10]
}

fn main() {
    // Run on a rayon worker, as a forward pass does (RAYON_NUM_THREADS sets the count).
    rayon::ThreadPoolBuilder::new().build().expect("a thread pool").install(run)
}

fn run() {
    let width: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let ch = |c: usize| {
        let v = c as f64 * width;
        let mut n = ((v + 4.0) as usize / 8 * 8).max(8);
        if (n as f64) < 0.9 * v {
            n += 8;
        }
        n
    };
    let blocks = [
        (3, 16, 32, 1),
        (3, 32, 64, 2),
        (3, 64, 64, 1),
        (3, 64, 128, 2),
        (3, 128, 128, 1),
        (3, 128, 256, 2),
        (5, 256, 256, 1),
        (5, 256, 256, 1),
        (5, 256, 256, 1),
        (5, 256, 256, 1),
        (5, 256, 256, 1),
        (5, 256, 512, 2),
        (5, 512, 512, 1),
    ];
    let (mut hw, c0) = (112usize, ch(16));
    let x = vec![0.5f32; 3 * 224 * 224];
    let w = vec![0.01f32; c0 * 27];
    let p = stem::StemWeights::pack(&w, vec![0.0; c0], 3, 3, [2, 2], Activation::HardSwish);
    let mut out = vec![0.0; 112 * 112 * c0];
    let t = time(|| stem::run(&p, &x, 1, 224, 224, &mut out));
    let macs = (112 * 112 * c0 * 27) as f64;
    println!("stem      {:>8.3} ms {:>6.1} GFLOP/s", t, 2.0 * macs / t / 1e6);
    let (mut dw_t, mut pw_t, mut dw_m, mut pw_m) = (0.0, 0.0, 0.0, 0.0);
    for (i, &(k, cin, cout, s)) in blocks.iter().enumerate() {
        let (cin, cout) = (ch(cin), ch(cout));
        let input = vec![0.5f32; hw * hw * cin];
        let dw = dwconv::DwWeights::pack(&vec![0.01; cin * k * k], vec![0.0; cin], k, [s, s], Activation::HardSwish);
        let ohw = dw.out_hw(hw, hw).0;
        let mut out = vec![0.0; ohw * ohw * cin];
        let t1 = time(|| dwconv::run(&dw, &input, 1, hw, hw, &mut out));
        let pw = pwconv::PwWeights::pack(&vec![0.01; cin * cout], vec![0.0; cout], cin, Activation::HardSwish);
        let mut out2 = vec![0.0; ohw * ohw * cout];
        let t2 = time(|| pwconv::run(&pw, &out, ohw * ohw, &mut out2));
        let (m1, m2) = ((ohw * ohw * cin * k * k) as f64, (ohw * ohw * cin * cout) as f64);
        println!(
            "block {i:>2} {hw:>3}->{ohw:>3} c{cin:>4}->{cout:>4} k{k}: dw {t1:>7.3} ms {:>6.1} GFLOP/s | pw {t2:>7.3} ms {:>6.1} GFLOP/s",
            2.0 * m1 / t1 / 1e6,
            2.0 * m2 / t2 / 1e6
        );
        dw_t += t1;
        pw_t += t2;
        dw_m += m1;
        pw_m += m2;
        hw = ohw;
    }
    println!("depthwise {dw_t:>8.3} ms {:>6.1} GFLOP/s", 2.0 * dw_m / dw_t / 1e6);
    println!("pointwise {pw_t:>8.3} ms {:>6.1} GFLOP/s", 2.0 * pw_m / pw_t / 1e6);
    in_sequence(&blocks, &ch);
}

/// The same layers run one after another, as in a forward pass, so that each
/// finds the caches the way the previous layer left them (weights from L3,
/// activations from L2), and the median time of each layer over the passes.
fn in_sequence(blocks: &[(usize, usize, usize, usize)], ch: &dyn Fn(usize) -> usize) {
    let c0 = ch(16);
    let x = vec![0.5f32; 3 * 224 * 224];
    let stem_w = stem::StemWeights::pack(&vec![0.01f32; c0 * 27], vec![0.0; c0], 3, 3, [2, 2], Activation::HardSwish);
    let mut layers = Vec::new();
    let mut hw = 112;
    for &(k, cin, cout, s) in blocks {
        let (cin, cout) = (ch(cin), ch(cout));
        let dw = dwconv::DwWeights::pack(&vec![0.01; cin * k * k], vec![0.0; cin], k, [s, s], Activation::HardSwish);
        let pw = pwconv::PwWeights::pack(&vec![0.01; cin * cout], vec![0.0; cout], cin, Activation::HardSwish);
        let ohw = dw.out_hw(hw, hw).0;
        layers.push((hw, ohw, cin, cout, dw, pw));
        hw = ohw;
    }
    let mut a = vec![0.0f32; 112 * 112 * ch(64)];
    let mut b = vec![0.0f32; 112 * 112 * ch(64)];
    let mut times = vec![Vec::new(); 1 + 2 * layers.len()];
    for _ in 0..41 {
        let s = Instant::now();
        stem::run(&stem_w, &x, 1, 224, 224, &mut a[..112 * 112 * c0]);
        times[0].push(s.elapsed().as_secs_f64() * 1e3);
        for (i, (hw, ohw, cin, cout, dw, pw)) in layers.iter().enumerate() {
            let s = Instant::now();
            dwconv::run(dw, &a[..hw * hw * cin], 1, *hw, *hw, &mut b[..ohw * ohw * cin]);
            times[1 + 2 * i].push(s.elapsed().as_secs_f64() * 1e3);
            let s = Instant::now();
            pwconv::run(pw, &b[..ohw * ohw * cin], ohw * ohw, &mut a[..ohw * ohw * cout]);
            times[2 + 2 * i].push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    println!("in sequence (median of 41 passes):");
    println!("stem      {:>8.3} ms", median(&mut times[0]));
    let (mut dw_t, mut pw_t) = (0.0, 0.0);
    for i in 0..layers.len() {
        let (d, p) = (median(&mut times[1 + 2 * i]), median(&mut times[2 + 2 * i]));
        println!("block {i:>2}: dw {d:>7.3} ms | pw {p:>7.3} ms");
        dw_t += d;
        pw_t += p;
    }
    println!("depthwise {dw_t:>8.3} ms, pointwise {pw_t:>8.3} ms");
}
