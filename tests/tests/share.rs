//! Ban sharing between two real agents: agent A (peer namespace) bans an
//! address, its webhook posts the ban to agent B's `[share]` receiver, and
//! B's XDP program drops that address's packets.

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use blocker_tests::{
    agent::Agent,
    netns::{AGENT_V4, NetPair, PEER_V4},
    wait_for,
};

const TOKEN: &str = "0123456789abcdef-share-test";
const PORT: u16 = 19591;

#[test]
fn a_ban_on_one_agent_is_enforced_by_its_peer() {
    let net = NetPair::new();
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("share.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    // B receives, from A's address only.
    let b = Agent::start(
        &net,
        &format!(
            "[share]\nlisten = \"{AGENT_V4}:{PORT}\"\nallow_remote = true\ntoken_file = {:?}\n\
             accept_from = [\"{PEER_V4}/32\"]\njail = \"peers\"\nmax_bantime = \"2h\"\n",
            token.display().to_string()
        ),
    );
    // A sends every ban to B.
    let a = Agent::start_in(
        &net.peer_ns,
        &[net.peer_if.as_str()],
        &format!(
            "[[notify.webhook]]\nurl = \"http://{AGENT_V4}:{PORT}/v1/ban\"\nevents = [\"ban\"]\nmax_messages = 0\n\
             headers = {{ Authorization = \"Bearer {TOKEN}\" }}\n"
        ),
    );
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)), "traffic passes before any ban");

    // A bans 192.0.2.0/24 and its own address (the one B sees its packets from).
    a.ok(&["ban", "192.0.2.0/24", "--for", "1h"]);
    assert!(
        wait_for(Duration::from_secs(10), || b.ban_row("192.0.2.0/24").is_some()),
        "B never got the ban\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    let row = b.ban_row("192.0.2.0/24").unwrap();
    assert_eq!(row["jail"], "peers");
    a.ok(&["ban", PEER_V4]); // permanent at A: capped at B's max_bantime
    assert!(wait_for(Duration::from_secs(10), || b.ban_row(&format!("{PEER_V4}/32")).is_some()), "{}", b.log());
    let row = b.ban_row(&format!("{PEER_V4}/32")).unwrap();
    assert!(row["expires_at"].is_string(), "a shared ban always expires: {row}");
    assert!(net.ping_blocked(PEER_V4, AGENT_V4), "B's XDP drops the shared ban");
    let stats = b.stats();
    assert!(stats["dropped"].as_u64().unwrap() > 0, "{stats}");
    assert!(b.log().contains(&format!("[peers] Ban {PEER_V4}/32 (shared by ")), "{}", b.log());
}
