//! The state database through its public API: round trips, bounds, refusal
//! of newer schemas, recovery from corrupt files.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use blocker::{
    enforce::Target,
    jail::{BanHistory, PastBans},
    notify::Outbox,
    source::{Checkpoints, FilePosition, Fingerprint, Position},
    state::{BanRow, SCHEMA_VERSION, StateDb, StateError, StateOptions},
};

fn t(s: &str) -> Target {
    s.parse().unwrap()
}

/// Whole milliseconds: the database stores times at that precision.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn row(target: &str, jail: &str, banned: u64, expires: Option<u64>) -> BanRow {
    BanRow {
        target: t(target),
        jail: jail.into(),
        banned_at: at(banned),
        expires_at: expires.map(at),
        ban_count: 1,
        matches: Vec::new(),
    }
}

fn open(dir: &Path) -> StateDb {
    StateDb::open_in(dir, StateOptions::default()).unwrap()
}

fn sorted(mut v: Vec<BanRow>) -> Vec<BanRow> {
    v.sort_by_key(|r| r.target);
    v
}

#[test]
fn bans_round_trip_ipv4_ipv6_and_cidr_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = vec![
        row("192.0.2.7", "sshd", 1_700_000_000_123, Some(1_700_000_600_456)),
        row("2001:db8::1", "sshd", 1_700_000_000_000, None),
        row("198.51.100.0/24", "recidive", 1_700_000_000_000, Some(1_800_000_000_000)),
        row("2001:db8:1:2::/64", "nginx", 1_700_000_000_000, None),
        row("::ffff:203.0.113.9", "sshd", 1_700_000_000_000, None),
    ];
    rows[0].ban_count = 3;
    rows[0].matches = vec!["Failed password for root from 192.0.2.7".into(), "again".into()];
    {
        let db = open(dir.path());
        db.upsert_bans(&rows).unwrap();
    }
    let db = open(dir.path());
    let got = sorted(db.active_bans().unwrap());
    // The restore path leaves matched lines out.
    let mut want: Vec<BanRow> = rows
        .iter()
        .cloned()
        .map(|mut r| {
            r.matches.clear();
            r
        })
        .collect();
    want = sorted(want);
    assert_eq!(got, want);
    // Mapped IPv4 was stored as the IPv4 target.
    assert!(got.iter().any(|r| r.target.to_string() == "203.0.113.9/32"));
    // One ban, with its lines.
    assert_eq!(db.ban(&t("192.0.2.7")).unwrap().unwrap(), rows[0]);
    assert_eq!(db.ban(&t("192.0.2.8")).unwrap(), None);
    assert_eq!(db.ban_count().unwrap(), 5);
}

#[test]
fn a_reban_replaces_the_row_and_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut first = row("192.0.2.7", "sshd", 1000, Some(2000));
    first.matches = vec!["one".into()];
    db.upsert_bans(&[first]).unwrap();
    let mut second = row("192.0.2.7", "recidive", 3000, None);
    second.ban_count = 2;
    db.upsert_bans(std::slice::from_ref(&second)).unwrap();
    assert_eq!(db.active_bans().unwrap(), [second.clone()]);
    // The old lines went with the old ban.
    assert_eq!(db.ban(&second.target).unwrap().unwrap(), second);
}

#[test]
fn matched_lines_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StateOptions { max_matches: 3, max_match_len: 5, ..StateOptions::default() };
    let db = StateDb::open_in(dir.path(), opts).unwrap();
    let mut r = row("192.0.2.7", "sshd", 1000, None);
    r.matches = (0..10).map(|i| format!("line {i} and more")).collect();
    db.upsert_bans(&[r]).unwrap();
    let got = db.ban(&t("192.0.2.7")).unwrap().unwrap();
    assert_eq!(got.matches, ["line ", "line ", "line "]);
}

#[test]
fn removal_one_many_by_jail_all_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.upsert_bans(&[
        row("192.0.2.1", "sshd", 0, Some(100)),
        row("192.0.2.2", "sshd", 0, Some(200)),
        row("192.0.2.3", "nginx", 0, Some(300)),
        row("2001:db8::/64", "nginx", 0, None),
        row("192.0.2.5", "postfix", 0, Some(500)),
        row("192.0.2.6", "postfix", 0, Some(600)),
    ])
    .unwrap();

    assert!(db.remove_ban(&t("192.0.2.1")).unwrap());
    assert!(!db.remove_ban(&t("192.0.2.1")).unwrap());

    let expired: Vec<String> = db.expired_before(at(300)).unwrap().iter().map(|r| r.target.to_string()).collect();
    assert_eq!(sorted_strings(expired), ["192.0.2.2/32", "192.0.2.3/32"]);
    assert_eq!(db.remove_expired(at(300)).unwrap(), 2);
    // Permanent bans never expire.
    assert_eq!(db.remove_expired(at(u64::MAX / 4)).unwrap(), 2);
    assert_eq!(db.ban_count().unwrap(), 1);

    db.upsert_bans(&[row("192.0.2.7", "sshd", 0, None), row("192.0.2.8", "nginx", 0, None)]).unwrap();
    assert_eq!(db.remove_bans(&[t("192.0.2.7"), t("192.0.2.9")]).unwrap(), 1);
    assert_eq!(db.remove_bans_where(Some("nginx")).unwrap(), 2);
    assert_eq!(db.remove_bans_where(Some("nginx")).unwrap(), 0);
    db.upsert_bans(&[row("192.0.2.7", "sshd", 0, None)]).unwrap();
    assert_eq!(db.remove_bans_where(None).unwrap(), 1);
    assert!(db.active_bans().unwrap().is_empty());
}

fn sorted_strings(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn history_answers_like_the_memory_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mem = blocker::jail::MemoryHistory::default();
    let a = t("192.0.2.7");
    let b = t("2001:db8::/64");
    let events = [
        (a, "sshd", 1000, Some(600_000)),
        (a, "sshd", 5000, Some(1_200_000)),
        (a, "recidive", 7000, None),
        (b, "sshd", 2000, Some(60_000)),
        (a, "sshd", 9000, Some(2_400_000)),
    ];
    for (target, jail, when, bt) in events {
        let bt = bt.map(Duration::from_millis);
        db.record(&target, jail, at(when), bt).unwrap();
        mem.record(&target, jail, at(when), bt).unwrap();
    }
    for target in [a, b, t("192.0.2.8")] {
        for jail in [None, Some("sshd"), Some("recidive"), Some("nginx")] {
            for since in [0, 1000, 4000, 8000, 10_000] {
                assert_eq!(
                    db.past(&target, jail, at(since)).unwrap(),
                    mem.past(&target, jail, at(since)).unwrap(),
                    "{target} {jail:?} since {since}"
                );
            }
        }
    }
    assert_eq!(
        db.past(&a, Some("sshd"), at(0)).unwrap(),
        PastBans { count: 3, last_banned_at: Some(at(9000)), last_bantime: Some(Duration::from_secs(2400)) }
    );
    // The last ban in any jail; a permanent one has no bantime.
    assert_eq!(db.past(&a, None, at(6000)).unwrap().last_bantime, Some(Duration::from_secs(2400)));
    assert_eq!(db.past(&a, Some("recidive"), at(0)).unwrap().last_bantime, None);
    // Survives a restart (these 1970 times are older than the default
    // history_max_age, which open applies).
    drop(db);
    let db = StateDb::open_in(dir.path(), StateOptions { history_max_age: Duration::MAX, ..StateOptions::default() })
        .unwrap();
    assert_eq!(db.past(&a, None, at(0)).unwrap().count, 4);
}

#[test]
fn history_is_purged_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(86_400);
    let opts = StateOptions { history_max_age: 10 * day, ..StateOptions::default() };
    let db = StateDb::open_in(dir.path(), opts.clone()).unwrap();
    let now = SystemTime::now();
    let a = t("192.0.2.7");
    for age in [30, 20, 11, 9, 1] {
        db.record(&a, "sshd", now - age * day, None).unwrap();
    }
    assert_eq!(db.history_len(), 5);
    assert_eq!(db.purge_history(now).unwrap(), 3);
    assert_eq!(db.history_len(), 2);
    assert_eq!(db.past(&a, None, UNIX_EPOCH).unwrap().count, 2);
    // Opening purges too.
    db.record(&a, "sshd", now - 40 * day, None).unwrap();
    drop(db);
    let db = StateDb::open_in(dir.path(), opts).unwrap();
    assert_eq!(db.history_len(), 2);
}

#[test]
fn history_is_bounded_in_rows_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StateOptions { history_max_rows: 100, ..StateOptions::default() };
    let db = StateDb::open_in(dir.path(), opts).unwrap();
    let now = SystemTime::now();
    // Record far more than the bound (and the insert-time slack): the table
    // never exceeds bound + slack, and maintenance brings it to the bound.
    for i in 0..3000u64 {
        let target = Target::from_v4([10, 0, (i >> 8) as u8, i as u8], 32);
        db.record(&target, "sshd", now - Duration::from_secs(3000 - i), None).unwrap();
        assert!(db.history_len() <= 100 + 1024 + 1);
    }
    db.maintain(now).unwrap();
    assert_eq!(db.history_len(), 100);
    // The newest 100 are the ones kept.
    let oldest_kept = Target::from_v4([10, 0, (2900u64 >> 8) as u8, 2900u64 as u8], 32);
    let gone = Target::from_v4([10, 0, (2899u64 >> 8) as u8, 2899u64 as u8], 32);
    assert_eq!(db.past(&oldest_kept, None, UNIX_EPOCH).unwrap().count, 1);
    assert_eq!(db.past(&gone, None, UNIX_EPOCH).unwrap().count, 0);
}

#[test]
fn checkpoints_round_trip_and_survive_reopen_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let file = Position::File(FilePosition {
        dev: 1,
        ino: u64::MAX,
        fingerprint: Fingerprint { len: 3, hash: u64::MAX - 1 },
        offset: 5,
    });
    let journal = Position::Journal { cursor: "s=abc;i=1".into() };
    {
        let db = open(dir.path());
        assert_eq!(db.load("file:/var/log/auth.log").unwrap(), None);
        db.store("file:/var/log/auth.log", &file).unwrap();
        db.store("journal", &journal).unwrap();
        assert_eq!(db.load("journal").unwrap(), Some(journal.clone()));
        db.flush().unwrap();
        // Stored but not flushed: lost on restart, by contract.
        db.store("journal", &Position::None).unwrap();
    }
    let db = open(dir.path());
    assert_eq!(db.load("file:/var/log/auth.log").unwrap(), Some(file));
    assert_eq!(db.load("journal").unwrap(), Some(journal));
    assert_eq!(db.retain_checkpoints(&["journal"]).unwrap(), 1);
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.load("file:/var/log/auth.log").unwrap(), None);
}

#[test]
fn checkpoints_are_imported_from_the_json_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Position::Journal { cursor: "s=old".into() };
    {
        let file = blocker::source::FileCheckpoints::open(dir.path()).unwrap();
        file.store("journal", &journal).unwrap();
        file.store("sshd:/var/log/auth.log", &Position::None).unwrap();
        file.flush().unwrap();
    }
    let db = open(dir.path());
    // A key the database already has keeps its own position.
    db.store("sshd:/var/log/auth.log", &Position::Journal { cursor: "newer".into() }).unwrap();
    assert_eq!(db.import_file_checkpoints(dir.path()).unwrap(), 1);
    assert_eq!(db.load("journal").unwrap(), Some(journal.clone()));
    assert_eq!(db.load("sshd:/var/log/auth.log").unwrap(), Some(Position::Journal { cursor: "newer".into() }));
    assert!(dir.path().join("source-checkpoints.json.imported").exists());
    assert_eq!(db.import_file_checkpoints(dir.path()).unwrap(), 0);
    drop(db);
    assert_eq!(open(dir.path()).load("journal").unwrap(), Some(journal));
}

#[test]
fn outbox_due_retry_and_expiry_ordering() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = db.push("email", r#"{"n":1}"#, at(1000)).unwrap();
    let b = db.push("webhook:slack", r#"{"n":2}"#, at(2000)).unwrap();
    let c = db.push("email", r#"{"n":3}"#, at(3000)).unwrap();
    assert!(a < b && b < c);
    assert_eq!(db.len().unwrap(), 3);
    // Due: created at or before now, oldest first, limited.
    let due: Vec<_> = db.due(at(2500), 10).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(due, [a, b]);
    assert_eq!(db.due(at(5000), 2).unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [a, b]);
    // a failed: not due until 10000.
    db.retry_at(a, 1, at(10_000)).unwrap();
    assert_eq!(db.due(at(5000), 10).unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [b, c]);
    db.delivered(b).unwrap();
    let later = db.due(at(10_000), 10).unwrap();
    assert_eq!(later.iter().map(|e| e.id).collect::<Vec<_>>(), [a, c]);
    assert_eq!(later[0].attempts, 1);
    assert_eq!(later[0].next_attempt, at(10_000));
    assert_eq!(later[0].created_at, at(1000));
    assert_eq!(later[0].channel, "email");
    assert_eq!(later[0].payload, r#"{"n":1}"#);
    // Give up on what was created before 2000: a.
    assert_eq!(db.drop_older_than(at(2000)).unwrap(), 1);
    assert_eq!(db.len().unwrap(), 1);
    // Survives a restart; ids are not reused after deletion.
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.len().unwrap(), 1);
    db.delivered(c).unwrap();
    let d = db.push("email", "{}", at(4000)).unwrap();
    assert!(d > c);
}

#[test]
fn outbox_is_bounded_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StateOptions { outbox_max_rows: 5, ..StateOptions::default() };
    let db = StateDb::open_in(dir.path(), opts).unwrap();
    let ids: Vec<_> = (0..8).map(|i| db.push("email", "{}", at(i)).unwrap()).collect();
    assert_eq!(db.len().unwrap(), 5);
    let kept: Vec<_> = db.due(at(100), 100).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(kept, ids[3..]);
}

#[test]
fn files_are_private_and_shared_handles_work_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let db = Arc::new(StateDb::open_in(&state, StateOptions::default()).unwrap());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("blocker.db")), 0o600);
    assert_eq!(mode(&state.join("blocker.db-wal")), 0o600);
    let threads: Vec<_> = (0..4u8)
        .map(|n| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..50u8 {
                    db.upsert_bans(&[BanRow {
                        target: Target::from_v4([10, n, 0, i], 32),
                        jail: "sshd".into(),
                        banned_at: SystemTime::now(),
                        expires_at: None,
                        ban_count: 1,
                        matches: vec![],
                    }])
                    .unwrap();
                    db.record(&Target::from_v4([10, n, 0, i], 32), "sshd", SystemTime::now(), None).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(db.ban_count().unwrap(), 200);
    assert_eq!(db.history_len(), 200);
}

#[test]
fn a_database_from_a_newer_blocker_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocker.db");
    drop(StateDb::open(&path, StateOptions::default()).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    }
    let before = fs::read(&path).unwrap();
    match StateDb::open(&path, StateOptions::default()) {
        Err(e @ StateError::TooNew { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("newer"), "{msg}");
            assert!(msg.contains(&format!("{}", SCHEMA_VERSION + 1)), "{msg}");
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().contains("corrupt")), "{names:?}");
}

#[test]
fn a_garbage_file_is_moved_aside_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocker.db");
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    fs::write(&path, &garbage).unwrap();
    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    let aside = db.recovered_from().expect("recovered").to_owned();
    assert!(aside.file_name().unwrap().to_string_lossy().starts_with("blocker.db.corrupt-"));
    assert_eq!(fs::read(&aside).unwrap(), garbage);
    // The fresh database works.
    db.upsert_bans(&[row("192.0.2.7", "sshd", 0, None)]).unwrap();
    assert_eq!(db.ban_count().unwrap(), 1);
    drop(db);
    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    assert_eq!(db.recovered_from(), None);
    assert_eq!(db.ban_count().unwrap(), 1);
}

/// A database of 5000 bans with one page in the middle scribbled over.
fn damaged_db(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("blocker.db");
    {
        let db = StateDb::open(&path, StateOptions::default()).unwrap();
        let rows: Vec<BanRow> = (0..5000u32)
            .map(|i| BanRow {
                target: Target::from_v4(i.to_be_bytes(), 32),
                jail: "sshd".into(),
                banned_at: at(1000),
                expires_at: Some(at(2000)),
                ban_count: 1,
                matches: vec![],
            })
            .collect();
        db.upsert_bans(&rows).unwrap();
    } // Last close checkpoints the WAL into the file.
    let mut bytes = fs::read(&path).unwrap();
    assert!(bytes.len() > 16 * 4096, "{}", bytes.len());
    let page = 4096 * (bytes.len() / 4096 / 2);
    for (i, b) in bytes[page..page + 4096].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_corrupt_page_found_by_check_on_open_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_db(dir.path());
    let db = StateDb::open(&path, StateOptions { check_on_open: true, ..StateOptions::default() }).unwrap();
    assert!(db.recovered_from().is_some());
    assert_eq!(db.ban_count().unwrap(), 0);
}

#[test]
fn a_corrupt_page_met_later_is_reported_and_recovered_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_db(dir.path());
    // Without the check the header and schema are fine: it opens...
    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    assert_eq!(db.recovered_from(), None);
    // ...and the restore meets the damage.
    let e = db.active_bans().unwrap_err();
    assert!(e.is_corrupt(), "{e:?}");
    assert!(db.verify().unwrap_err().is_corrupt());
    drop(db);
    // The next open checks the marked file and starts afresh.
    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    assert!(db.recovered_from().is_some());
    assert_eq!(db.active_bans().unwrap(), []);
    drop(db);
    let db = StateDb::open(&path, StateOptions::default()).unwrap();
    assert_eq!(db.recovered_from(), None);
    db.verify().unwrap();
}

#[test]
fn corrupt_copies_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocker.db");
    let opts = StateOptions { keep_corrupt: 2, ..StateOptions::default() };
    for i in 0..5u8 {
        fs::write(&path, vec![i; 8192]).unwrap();
        let db = StateDb::open(&path, opts.clone()).unwrap();
        assert!(db.recovered_from().is_some());
    }
    let copies = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(copies, 2);
}
