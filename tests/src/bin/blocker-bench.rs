//! `cargo xtask bench`: benchmarks with their anchors, same run, same input.
fn main() {
    eprintln!("no benchmarks yet");
}
