// A head without its conv cannot have a conv bias.
lcnet_zoo::network!(toml = r#"
[network]
name = "tiny"
input = [3, 32, 32]
classes = 10
widths = [1.0]
divisor = 8

[stem]
kernel = 3
stride = 2
channels = 16

[[stage]]
name = "blocks2"
blocks = [
    [3, 16, 32, 1, false],
    [3, 32, 64, 2, true],
]

[head]
conv = false
bias = true
channels = 128
dropout = 0.2
dropout_mode = "downscale_in_infer"
"#);

fn main() {}
