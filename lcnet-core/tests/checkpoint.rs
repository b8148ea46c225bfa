//! Bad checkpoints give errors that name the file, the tensor and the
//! expected shape; nothing panics.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lcnet_core::weights::save_f32;
use lcnet_core::{Checkpoint, Error};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lcnet-core-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, tensors: &[(&str, Vec<usize>, &[f32])]) -> PathBuf {
    let path = temp(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    save_f32(&path, tensors, &BTreeMap::from([("model".to_string(), "test".to_string())])).unwrap();
    path
}

#[test]
fn takes_tensors_and_reports_unused_ones() {
    let path = write("ok.safetensors", &[("a", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]), ("b", vec![1], &[5.0])]);
    let mut ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.metadata().get("model").map(String::as_str), Some("test"));
    assert_eq!(ck.take("a", &[2, 2]).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    let err = ck.finish("net").unwrap_err();
    assert!(matches!(&err, Error::UnexpectedTensors { names, .. } if names == &["b".to_string()]), "{err}");
    assert!(err.to_string().contains("unexpected tensor(s) for net: b"), "{err}");
    ck.take("b", &[1]).unwrap();
    ck.finish("net").unwrap();
}

#[test]
fn missing_and_misshaped_tensors_name_the_key_and_shape() {
    let path = write("shape.safetensors", &[("conv.weight", vec![4, 3, 3, 3], &[0.5; 108])]);
    let mut ck = Checkpoint::open(&path).unwrap();
    let err = ck.take("conv.weight", &[8, 3, 3, 3]).unwrap_err().to_string();
    assert!(err.contains("`conv.weight` has shape [4, 3, 3, 3], expected [8, 3, 3, 3]"), "{err}");
    assert!(err.contains("shape.safetensors"), "{err}");
    let err = ck.take("bn.weight", &[8]).unwrap_err().to_string();
    assert!(err.contains("missing tensor `bn.weight` (expected shape [8])"), "{err}");
}

#[test]
fn non_f32_tensors_are_refused() {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F64, vec![2], &bytes).unwrap();
    let path = temp("f64.safetensors");
    std::fs::write(&path, safetensors::serialize([("x", view)], &None).unwrap()).unwrap();
    let mut ck = Checkpoint::open(&path).unwrap();
    let err = ck.take("x", &[2]).unwrap_err().to_string();
    assert!(err.contains("`x` has dtype F64, expected F32"), "{err}");
}

#[test]
fn truncated_empty_and_foreign_files_are_refused() {
    let good = write("good.safetensors", &[("a", vec![64], &[1.0; 64])]);
    let bytes = std::fs::read(&good).unwrap();

    let truncated = temp("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let err = Checkpoint::open(&truncated).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    let empty = temp("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let err = Checkpoint::open(&empty).unwrap_err().to_string();
    assert!(err.contains("too short"), "{err}");

    let text = temp("notes.txt");
    std::fs::write(&text, b"these are not tensors, just some text in a file").unwrap();
    let err = Checkpoint::open(&text).unwrap_err().to_string();
    assert!(err.contains("not a valid safetensors file"), "{err}");

    let err = Checkpoint::open(temp("does-not-exist.safetensors")).unwrap_err().to_string();
    assert!(err.contains("does-not-exist.safetensors"), "{err}");
}

#[test]
fn non_finite_values_are_refused() {
    let path = write("nan.safetensors", &[("a", vec![3], &[1.0, f32::NAN, 2.0])]);
    let mut ck = Checkpoint::open(&path).unwrap();
    let err = ck.take("a", &[3]).unwrap_err().to_string();
    assert!(err.contains("non-finite value (NaN) at flat index 1"), "{err}");
}

#[test]
fn writes_are_atomic_and_leave_no_temporary_file() {
    // A folder of its own: the other tests write beside each other in
    // parallel, and their temporary files may exist at any moment.
    let path = write("atomic/atomic.safetensors", &[("a", vec![1], &[1.0])]);
    let dir = path.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
