//! `cargo xtask bench [NAME..]`: each figure printed beside its anchor,
//! measured in the same run on the same input. `pgo-train` (not a
//! benchmark, no root) is the profiling workload of the PGO build.

mod datapath;
mod detect;
mod latency;
mod state;
mod table;
mod train;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "pgo-train") {
        return train::run();
    }
    blocker_tests::require_root();
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
