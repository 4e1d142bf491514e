//! `cargo xtask bench [NAME..]`: each figure printed beside its anchor,
//! measured in the same run on the same input.

mod datapath;
mod detect;
mod latency;
mod state;
mod table;

fn main() -> anyhow::Result<()> {
    blocker_tests::require_root();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = ["datapath", "detect", "latency", "state"];
    let chosen: Vec<&str> = if args.is_empty() { all.to_vec() } else { args.iter().map(String::as_str).collect() };
    for name in chosen {
        match name {
            "datapath" => datapath::run()?,
            "detect" => detect::run()?,
            "latency" => latency::run()?,
            "state" => state::run()?,
            other => anyhow::bail!("unknown benchmark {other:?}; known: {}", all.join(", ")),
        }
    }
    Ok(())
}
