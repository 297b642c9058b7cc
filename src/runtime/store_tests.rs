//! The binding store across restarts, driven through the registrar with real
//! REGISTER bytes (the registrar's test helpers build them).

use std::path::Path;

use super::store;
use crate::registrar::location::tests::source;
use crate::registrar::tests::{config, req, Req, NOW};
use crate::registrar::*;
use crate::sip::message::Message;

/// Every binding of every shard, sorted, connection ids cleared (they do not
/// survive a restart).
fn all_bindings(locations: &[Location]) -> Vec<(AorKey, Binding)> {
    let mut all: Vec<(AorKey, Binding)> = locations
        .iter()
        .flat_map(|l| l.iter())
        .flat_map(|(a, bs)| {
            bs.iter().map(move |b| {
                let mut b = b.clone();
                b.source.conn = None;
                (a.clone(), b)
            })
        })
        .collect();
    all.sort_by(|x, y| (&x.0, x.1.contact()).cmp(&(&y.0, y.1.contact())));
    all
}

/// Registers `users` AORs with two contacts each through the shard that owns each,
/// logging the changes; returns the state.
fn populate(dir: &Path, shards: usize, users: usize) -> Vec<(AorKey, Binding)> {
    let loaded = store::open(dir, shards, NOW).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut regs: Vec<Registrar> = loaded
        .locations
        .into_iter()
        .map(|l| Registrar::with_location(config(), l).unwrap())
        .collect();
    let mut stores = loaded.stores;
    for u in 0..users {
        let mut q = req().h(&format!(
            "Contact: <sip:u{u}@192.0.2.10:5060>;q=0.5, <sip:u{u}@198.51.100.1:5070;transport=tcp>;expires=600"
        ));
        q.to = format!("<sip:u{u}@example.com>");
        let bytes = q.bytes();
        let msg = Message::parse(&bytes).unwrap();
        let shard = shard_of_aor(&aor_of_register(&msg).unwrap(), shards);
        let mut out = Vec::new();
        let RegisterOutcome::Answered {
            status: 200,
            changes,
        } = regs[shard].on_register(NOW, 0, &msg, source(), &mut out)
        else {
            panic!("not registered");
        };
        stores[shard].record(&changes);
    }
    for s in &mut stores {
        s.sync().unwrap();
    }
    let locations: Vec<Location> = regs
        .into_iter()
        .map(|r| {
            let mut l = Location::new();
            for (a, bs) in r.location().iter() {
                for b in bs {
                    l.apply(&Change::Put {
                        aor: a.clone(),
                        binding: b.clone(),
                    });
                }
            }
            l
        })
        .collect();
    all_bindings(&locations)
}

fn log_path(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "log") && std::fs::metadata(p).unwrap().len() > 64
        })
        .collect();
    logs.sort();
    logs.remove(0)
}

#[test]
fn store_round_trip_keeps_every_binding() {
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 2, 20);
    assert_eq!(before.len(), 40);
    let loaded = store::open(dir.path(), 2, NOW + 1).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(all_bindings(&loaded.locations), before);
    // Each AOR is in the shard that owns it.
    for (i, l) in loaded.locations.iter().enumerate() {
        assert!(l.iter().all(|(a, _)| shard_of_aor(a, 2) == i));
    }
    // Connection ids name the old process's connections: cleared.
    assert!(loaded
        .locations
        .iter()
        .flat_map(|l| l.iter())
        .all(|(_, bs)| bs.iter().all(|b| b.source.conn.is_none())));
    // And again: the reopened epoch's snapshots carry everything.
    drop(loaded);
    let again = store::open(dir.path(), 2, NOW + 2).unwrap();
    assert_eq!(all_bindings(&again.locations), before);
}

#[test]
fn store_restart_with_a_different_shard_count_keeps_every_binding() {
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 3, 30);
    for shards in [2, 5, 1, 4] {
        let loaded = store::open(dir.path(), shards, NOW + 1).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(all_bindings(&loaded.locations), before, "{shards} shards");
        for (i, l) in loaded.locations.iter().enumerate() {
            assert!(l.iter().all(|(a, _)| shard_of_aor(a, shards) == i));
        }
    }
    // Only the current epoch's files remain.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4 * 2 + 1, "{names:?}");
}

#[test]
fn store_drops_expired_bindings_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 2, 10);
    // The `expires=600` contacts are gone 600 s later; the 3600 s ones stay.
    let loaded = store::open(dir.path(), 2, NOW + 600).unwrap();
    let after = all_bindings(&loaded.locations);
    assert_eq!(after.len(), 10);
    assert_eq!(
        after,
        before
            .into_iter()
            .filter(|(_, b)| b.expires_at > NOW + 600)
            .collect::<Vec<_>>()
    );
    let loaded = store::open(dir.path(), 2, NOW + 3600).unwrap();
    assert!(all_bindings(&loaded.locations).is_empty());
}

#[test]
fn store_truncated_log_keeps_the_valid_prefix_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 1, 10);
    let log = log_path(dir.path());
    let len = std::fs::metadata(&log).unwrap().len();
    // Cut the last record short, as a crash mid-write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let loaded = store::open(dir.path(), 1, NOW + 1).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let store::LoadWarning::Truncated { path, offset } = &loaded.warnings[0] else {
        panic!("{:?}", loaded.warnings);
    };
    assert_eq!(path, &log);
    assert!(*offset > 0 && *offset < len - 5);
    assert!(loaded.warnings[0]
        .to_string()
        .contains(&format!("byte {offset}")));
    // Every record but the last (one Put: one binding) survives.
    let after = all_bindings(&loaded.locations);
    assert_eq!(after.len(), before.len() - 1);
    assert!(after.iter().all(|x| before.contains(x)));
    // The damaged file is kept for inspection.
    let mut kept = log.clone().into_os_string();
    kept.push(".corrupt");
    assert!(Path::new(&kept).exists());
}

#[test]
fn store_corrupt_byte_in_the_middle_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 1, 10);
    let log = log_path(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&log, &bytes).unwrap();
    let loaded = store::open(dir.path(), 1, NOW + 1).unwrap();
    let [store::LoadWarning::Corrupt { path, offset }] = loaded.warnings.as_slice() else {
        panic!("{:?}", loaded.warnings);
    };
    assert_eq!(path, &log);
    // The record holding the damaged byte starts at or before it.
    assert!(*offset as usize <= mid);
    let after = all_bindings(&loaded.locations);
    assert!(!after.is_empty() && after.len() < before.len());
    assert!(after.iter().all(|x| before.contains(x)));
}

#[test]
fn store_compaction_then_more_changes_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = store::open(dir.path(), 1, NOW).unwrap();
    let mut reg = Registrar::with_location(config(), loaded.locations.pop().unwrap()).unwrap();
    let mut st = loaded.stores.pop().unwrap();
    let run = |reg: &mut Registrar, st: &mut store::ShardStore, q: Req| {
        let bytes = q.bytes();
        let msg = Message::parse(&bytes).unwrap();
        let mut out = Vec::new();
        if let RegisterOutcome::Answered { changes, .. } =
            reg.on_register(NOW, 0, &msg, source(), &mut out)
        {
            st.record(&changes);
        }
    };
    run(
        &mut reg,
        &mut st,
        req().h("Contact: <sip:alice@192.0.2.10>, <sip:alice@192.0.2.11>"),
    );
    st.sync().unwrap();
    let grown = st.log_len();
    st.compact(NOW, reg.location()).unwrap();
    assert!(st.log_len() < grown);
    // After compaction: remove one, add one, refresh one.
    run(
        &mut reg,
        &mut st,
        req()
            .cseq(1827)
            .h("Contact: <sip:alice@192.0.2.10>;expires=0, <sip:alice@192.0.2.12>"),
    );
    run(
        &mut reg,
        &mut st,
        req()
            .cseq(1828)
            .h("Contact: <sip:alice@192.0.2.11>;expires=900"),
    );
    // Records queued but not synced are written by a clean shutdown's sync.
    assert!(st.pending_len() > 0);
    st.sync().unwrap();
    let expected = all_bindings(std::slice::from_ref(reg.location()));
    drop(st);
    let reloaded = store::open(dir.path(), 1, NOW + 1).unwrap();
    assert!(reloaded.warnings.is_empty(), "{:?}", reloaded.warnings);
    assert_eq!(all_bindings(&reloaded.locations), expected);
    assert_eq!(expected.len(), 2);
}

#[test]
fn store_log_already_in_the_snapshot_is_skipped() {
    // A crash between writing the snapshot and truncating the log: the snapshot
    // names the log's generation and the loader does not replay it again.
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = store::open(dir.path(), 1, NOW).unwrap();
    let mut reg = Registrar::with_location(config(), loaded.locations.pop().unwrap()).unwrap();
    let mut st = loaded.stores.pop().unwrap();
    let bytes = req().h("Contact: <sip:alice@192.0.2.10>").bytes();
    let msg = Message::parse(&bytes).unwrap();
    let RegisterOutcome::Answered { changes, .. } =
        reg.on_register(NOW, 0, &msg, source(), &mut Vec::new())
    else {
        panic!()
    };
    st.record(&changes);
    st.sync().unwrap();
    let log = log_path(dir.path());
    let old_log = std::fs::read(&log).unwrap();
    st.compact(NOW, reg.location()).unwrap();
    drop(st);
    // Put the pre-compaction log back, and damage its body: were it replayed,
    // the damage would be reported.
    let mut damaged = old_log.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    std::fs::write(&log, &damaged).unwrap();
    let reloaded = store::open(dir.path(), 1, NOW + 1).unwrap();
    assert!(reloaded.warnings.is_empty(), "{:?}", reloaded.warnings);
    assert_eq!(reloaded.locations[0].len(), 1);
}

#[test]
fn store_missing_manifest_loads_the_newest_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 2, 5);
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let loaded = store::open(dir.path(), 2, NOW + 1).unwrap();
    assert!(matches!(
        loaded.warnings.as_slice(),
        [store::LoadWarning::MissingManifest { epoch: 1, .. }]
    ));
    assert_eq!(all_bindings(&loaded.locations), before);
}

#[test]
fn store_ignores_files_of_an_unfinished_start() {
    // A start that crashed before its MANIFEST, with another shard count, left
    // files of the next epoch: they must not leak into the next load.
    let dir = tempfile::tempdir().unwrap();
    let before = populate(dir.path(), 1, 5);
    // Fake leftovers: another store's log (more users), renamed for epoch 2,
    // shard 3, its header rewritten to match.
    let other = tempfile::tempdir().unwrap();
    populate(other.path(), 1, 8);
    let mut ghost = std::fs::read(log_path(other.path())).unwrap();
    let header = store::tests::header_bytes(2, 3, 1);
    ghost.splice(..header.len(), header);
    std::fs::write(dir.path().join("e2-s3.log"), ghost).unwrap();
    let loaded = store::open(dir.path(), 1, NOW + 1).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(all_bindings(&loaded.locations), before);
    assert!(!dir.path().join("e2-s3.log").exists());
    let again = store::open(dir.path(), 1, NOW + 2).unwrap();
    assert_eq!(all_bindings(&again.locations), before);
}
