// A config file that does not exist: the error gives the resolved path.
lcnet_zoo::network!("configs/no-such-table.toml");

fn main() {}
