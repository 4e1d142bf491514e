//! State database numbers (not a pass/fail test). Run with
//! `AYA_BUILD_SKIP=1 cargo test --release -p blocker-user --test state_perf -- --ignored --nocapture`;
//! `BLOCKER_PERF_BANS` sets the number of bans (default 1,000,000).

use std::{
    fs,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use blocker::{
    enforce::Target,
    jail::BanHistory,
    state::{BanRow, Durability, StateDb, StateOptions},
};

fn rows(n: u32, salt: u8) -> Vec<BanRow> {
    let now = SystemTime::now();
    let jails: [&str; 5] = ["sshd", "nginx-http-auth", "postfix", "recidive", "dovecot"];
    let jails: Vec<std::sync::Arc<str>> = jails.iter().map(|&j| j.into()).collect();
    (0..n)
        .map(|i| {
            // Scattered like real attackers: a multiplicative hash of i.
            let h = i.wrapping_mul(2_654_435_761);
            let target = if i % 10 == 9 {
                let mut o = [0u8; 16];
                o[0] = 0x20;
                o[1] = salt;
                o[2..6].copy_from_slice(&h.to_be_bytes());
                Target::from_v6(o, if i % 20 == 19 { 64 } else { 128 })
            } else {
                let mut o = h.to_be_bytes();
                o[0] = o[0].wrapping_add(salt);
                Target::from_v4(o, 32)
            };
            BanRow {
                target,
                jail: jails[(i % 5) as usize].clone(),
                banned_at: now,
                expires_at: if i % 50 == 0 {
                    None
                } else {
                    Some(now + Duration::from_secs(600 + u64::from(i % 3600)))
                },
                ban_count: 1 + i % 4,
                matches: Vec::new(),
            }
        })
        .collect()
}

/// CPU time of this thread (the machine may be shared: wall time varies).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn size(path: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        total += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// Bans per second written `per_call` at a time (1: a jail's single bans).
fn inserts(dir: &Path, durability: Durability, count: u32, matches: bool, per_call: usize) -> f64 {
    let path = dir.join(format!("single-{durability:?}-{matches}-{per_call}.db"));
    let db = StateDb::open(
        &path,
        StateOptions {
            durability,
            ..StateOptions::default()
        },
    )
    .unwrap();
    // Into a table that already holds 100k bans.
    db.upsert_bans(&rows(100_000, 7)).unwrap();
    let mut rs = rows(count, 99);
    if matches {
        for r in &mut rs {
            r.matches = (0..5)
                .map(|i| format!("Failed password for root from {} port {i} ssh2", r.target))
                .collect();
        }
    }
    let t = Instant::now();
    for chunk in rs.chunks(per_call) {
        db.upsert_bans(chunk).unwrap();
    }
    count as f64 / t.elapsed().as_secs_f64()
}

#[test]
#[ignore = "performance numbers; run explicitly"]
fn state_numbers() {
    let n: u32 = std::env::var("BLOCKER_PERF_BANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(
        std::env::var_os("BLOCKER_PERF_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .unwrap();
    let path = dir.path().join("blocker.db");
    let all = rows(n, 0);

    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    let (t, c) = (Instant::now(), thread_cpu());
    db.upsert_bans(&all).unwrap();
    let write = t.elapsed();
    println!(
        "write {n} bans in one transaction: {write:.2?} wall, {:.2?} CPU ({:.0} bans/s)",
        thread_cpu() - c,
        n as f64 / write.as_secs_f64()
    );
    println!("  size after the batch (db + wal): {}", mb(size(&path)));
    let t = Instant::now();
    db.sync().unwrap();
    println!("  sync() after it: {:.2?}", t.elapsed());
    drop(db);
    println!("db size for {n} bans (after close): {}", mb(size(&path)));

    let t = Instant::now();
    let db = StateDb::open(
        &path,
        StateOptions {
            check_on_open: true,
            ..StateOptions::default()
        },
    )
    .unwrap();
    println!("open with check_on_open (quick_check): {:.2?}", t.elapsed());
    drop(db);
    let t = Instant::now();
    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    println!("open (default, no quick_check): {:.2?}", t.elapsed());

    let (mut best, mut best_cpu) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let (t, c) = (Instant::now(), thread_cpu());
        let loaded = db.active_bans().unwrap();
        best = best.min(t.elapsed());
        best_cpu = best_cpu.min(thread_cpu() - c);
        assert_eq!(loaded.len(), n as usize);
    }
    println!("load all {n} bans (active_bans, best of 3): {best:.2?} wall, {best_cpu:.2?} CPU");
    let t = Instant::now();
    db.ban_count().unwrap();
    println!("  (count(*) alone: {:.2?})", t.elapsed());
    let t = Instant::now();
    db.verify().unwrap();
    println!(
        "verify (quick_check on a second connection): {:.2?}",
        t.elapsed()
    );
    let t = Instant::now();
    let expired = db
        .expired_before(SystemTime::now() + Duration::from_secs(900))
        .unwrap();
    println!(
        "expired_before (finds {}): {:.2?}",
        expired.len(),
        t.elapsed()
    );
    drop(db);

    let full = dir.path().join("full.db");
    let db = StateDb::open(
        &full,
        StateOptions {
            durability: Durability::PowerLoss,
            ..StateOptions::default()
        },
    )
    .unwrap();
    let t = Instant::now();
    db.upsert_bans(&all).unwrap();
    println!(
        "write {n} bans in one transaction, synchronous=FULL: {:.2?}",
        t.elapsed()
    );
    drop(db);
    drop(all);

    for (d, count) in [
        (Durability::Process, 20_000),
        (Durability::PowerLoss, 2_000),
    ] {
        println!(
            "single-ban upserts, {d:?}: {:.0} bans/s (no matches), {:.0} bans/s (5 matched lines)",
            inserts(dir.path(), d, count, false, 1),
            inserts(dir.path(), d, count, true, 1)
        );
    }
    let db = StateDb::open(dir.path().join("sync.db"), StateOptions::default()).unwrap();
    for r in rows(1000, 5) {
        db.upsert_bans(&[r]).unwrap();
    }
    let t = Instant::now();
    db.sync().unwrap();
    println!("sync() after 1000 single bans: {:.2?}", t.elapsed());
    drop(db);
    println!(
        "upserts 32 at a time (a writer draining a queue), 5 matched lines: Process {:.0} bans/s, PowerLoss {:.0} bans/s",
        inserts(dir.path(), Durability::Process, 64_000, true, 32),
        inserts(dir.path(), Durability::PowerLoss, 16_000, true, 32)
    );

    let hist = StateDb::open(dir.path().join("history.db"), StateOptions::default()).unwrap();
    let targets = rows(20_000, 3);
    let now = SystemTime::now();
    let t = Instant::now();
    for r in &targets {
        hist.record(&r.target, &r.jail, now, Some(Duration::from_secs(600)))
            .unwrap();
    }
    println!(
        "history record: {:.0}/s",
        targets.len() as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for r in &targets {
        hist.past(&r.target, Some(&r.jail), SystemTime::UNIX_EPOCH)
            .unwrap();
    }
    println!(
        "history past: {:.0}/s",
        targets.len() as f64 / t.elapsed().as_secs_f64()
    );
}
