#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lcnet_fuzz::checkpoint(data));
