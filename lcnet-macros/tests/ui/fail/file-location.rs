// A table in a file: the error names the file as written, its line and
// column, and shows the line. (trybuild builds this crate in
// target/tests/trybuild/lcnet-macros, hence the relative path.)
lcnet_zoo::network!("../../../../lcnet-macros/tests/ui/configs/stride-three.toml");

fn main() {}
