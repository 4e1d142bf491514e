//! Durability under `kill -9`: a child process (this test binary again, with
//! an environment variable) upserts bans in a loop and prints each
//! acknowledged batch; the parent kills it with SIGKILL at random moments,
//! reopens the database and checks that every acknowledged ban is there and
//! that the batch in flight is there entirely or not at all.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use blocker::{
    enforce::Target,
    state::{BanRow, StateDb, StateOptions},
};

const CHILD_ENV: &str = "BLOCKER_STATE_CRASH_CHILD";

/// The ban number `j` of batch `k` of run `run`: unique across the test.
fn target(run: u32, k: u32, j: u32) -> Target {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    o[4..8].copy_from_slice(&run.to_be_bytes());
    o[8..12].copy_from_slice(&k.to_be_bytes());
    o[12..].copy_from_slice(&j.to_be_bytes());
    // Odd runs use IPv4 /32s and /24s for their first 2^16 bans (one first
    // octet per run keeps them unique).
    if run % 2 == 1 && run < 200 && k < 256 && j < 256 {
        return Target::from_v4([10 + (run / 2) as u8, k as u8, j as u8, 0], if j.is_multiple_of(2) { 32 } else { 24 });
    }
    Target::from_v6(o, 128)
}

fn batch_len(k: u32) -> u32 {
    // Mostly single bans (a jail's rate), now and then a large batch.
    match k % 8 {
        7 => 500,
        3 => 20,
        _ => 1,
    }
}

/// The child: runs only when spawned by `bans_acknowledged_before_sigkill_survive`.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (path, run) = spec.rsplit_once('|').expect("path|run");
    let run: u32 = run.parse().unwrap();
    let db = StateDb::open(path, StateOptions::default()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    for k in 0.. {
        let n = batch_len(k);
        let rows: Vec<BanRow> = (0..n)
            .map(|j| BanRow {
                target: target(run, k, j),
                jail: "sshd".into(),
                banned_at: SystemTime::now(),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
                ban_count: 1,
                matches: vec![format!("run {run} batch {k} ban {j}")],
            })
            .collect();
        writeln!(out, "TRY {k} {n}").unwrap();
        out.flush().unwrap();
        db.upsert_bans(&rows).unwrap();
        writeln!(out, "ACK {k}").unwrap();
        out.flush().unwrap();
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn bans_acknowledged_before_sigkill_survive() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let iterations: u32 = std::env::var("BLOCKER_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let seed: u64 = std::env::var("BLOCKER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("crash test: {iterations} iterations, BLOCKER_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocker.db");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut expected: HashSet<Target> = HashSet::new();
    let (mut acked_total, mut in_flight_kept, mut in_flight_lost, mut killed_in_open) = (0usize, 0, 0, 0);

    let (mut t_child, mut t_check) = (Duration::ZERO, Duration::ZERO);
    for run in 0..iterations {
        let mut ready = false;
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1", "--quiet"])
            .env(CHILD_ENV, format!("{}|{run}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // One run in five is killed at a random moment from its start (maybe
        // while opening or migrating); the others once they are writing.
        let delay = Duration::from_micros(rng.below(30_000));
        let t0 = Instant::now();
        if run % 5 == 0 {
            std::thread::sleep(delay);
        } else {
            ready = true; // READY is consumed here
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(l) if l == "READY" => break,
                    Ok(_) => {}
                    Err(e) => panic!("child never got ready: {e}"),
                }
                assert!(Instant::now() < deadline);
            }
            std::thread::sleep(delay);
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();

        let t1 = Instant::now();
        t_child += t1 - t0;
        let mut tried: Option<(u32, u32)> = None;
        let mut acked = Vec::new();
        for line in rx.try_iter() {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["READY"] => ready = true,
                ["TRY", k, n] => tried = Some((k.parse().unwrap(), n.parse().unwrap())),
                ["ACK", k] => {
                    let k: u32 = k.parse().unwrap();
                    assert_eq!(tried.map(|t| t.0), Some(k));
                    acked.push(tried.take().unwrap());
                }
                _ => {}
            }
        }
        if !ready {
            killed_in_open += 1;
        }
        for &(k, n) in &acked {
            for j in 0..n {
                expected.insert(target(run, k, j));
            }
            acked_total += n as usize;
        }

        let db = StateDb::open(&path, StateOptions::default()).unwrap_or_else(|e| panic!("run {run}: reopen: {e}"));
        assert_eq!(db.recovered_from(), None, "run {run}: the database was found corrupt");
        db.verify().unwrap_or_else(|e| panic!("run {run}: quick_check: {e}"));
        // This run's acknowledged bans are there...
        let has = |t: &Target| db.ban(t).unwrap().is_some();
        for &(k, n) in &acked {
            for j in 0..n {
                let t = target(run, k, j);
                assert!(has(&t), "run {run} (seed {seed}): acknowledged ban {t} (batch {k}) lost");
            }
        }
        // ...the batch in flight is there entirely or not at all...
        if let Some((k, n)) = tried {
            let there = (0..n).filter(|&j| has(&target(run, k, j))).count() as u32;
            assert!(there == 0 || there == n, "run {run}: batch {k} half stored ({there} of {n})");
            if there == n {
                in_flight_kept += 1;
                expected.extend((0..n).map(|j| target(run, k, j)));
            } else {
                in_flight_lost += 1;
            }
        }
        // ...nothing else appeared or went (the count every run; the whole
        // set now and then and at the end, as that costs a full load).
        assert_eq!(db.ban_count().unwrap(), expected.len(), "run {run}: row count");
        if run % 40 == 39 || run + 1 == iterations {
            let present: HashSet<Target> = db.active_bans().unwrap().into_iter().map(|r| r.target).collect();
            assert!(present == expected, "run {run} (seed {seed}): stored bans differ from the acknowledged ones");
        }
        if let Some((k, _)) = acked.last() {
            let t = target(run, *k, 0);
            assert!(db.ban(&t).unwrap().unwrap().matches[0].starts_with(&format!("run {run} batch {k}")));
        }
        t_check += t1.elapsed();
    }
    eprintln!(
        "crash test: {iterations} kills in {:.1?}: {acked_total} acknowledged bans all present \
         ({} rows); in-flight batches kept {in_flight_kept}, lost {in_flight_lost}; {killed_in_open} killed before ready; \
         {t_child:.1?} in children, {t_check:.1?} checking",
        started.elapsed(),
        expected.len(),
    );
    assert!(acked_total > 0);
}
