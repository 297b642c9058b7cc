//! Persistence of the location service: bindings survive a restart.
//!
//! # Layout (independent of the core count)
//!
//! ```text
//! DATA_DIR/MANIFEST          "coresip-location 1\nepoch E\nshards N\n"
//! DATA_DIR/eE-sI.snap        shard I's bindings at its last compaction
//! DATA_DIR/eE-sI.log         shard I's changes since
//! ```
//!
//! Each run is an *epoch* with a fixed shard count, so within an epoch every AOR's
//! records are in exactly one shard's files and the files can be read in any order.
//! [`open`] is a single loader: it reads every file of the MANIFEST's epoch —
//! whatever shard count wrote it — and hands each AOR to the shard that owns it now
//! (`shard_of_aor(aor, shards)`). It then starts a new epoch: one snapshot per new
//! shard (temp file, fsync, rename), an empty log each, the new MANIFEST (same
//! dance), and only then deletes the old epoch's files. A crash anywhere in between
//! leaves the old MANIFEST pointing at intact files. A restart with a different
//! `--cores` therefore keeps every binding.
//!
//! # Records
//!
//! `len: u32 LE | crc32(payload): u32 LE | payload`, the payload's first byte its
//! kind. Each file starts with a header record naming its epoch, shard and *log
//! generation*. A compaction writes the snapshot recording the generation of the
//! log it supersedes, then truncates the log and starts the next generation; if a
//! crash falls between the two, the loader sees equal generations and skips the
//! already-included log.
//!
//! A record that is cut short (a crash mid-write) or fails its checksum ends the
//! file: the records before it are kept and a [`LoadWarning`] names the file and
//! byte offset. Such a file is kept as `NAME.corrupt` instead of being deleted.
//!
//! # Writing
//!
//! [`ShardStore::record`] only encodes into memory, so REGISTER processing costs
//! no system call; [`ShardStore::sync`] writes and fsyncs (the runtime calls it
//! every `--sync-interval` and at shutdown); [`ShardStore::compact`] is a plain
//! function over the shard's [`Location`] for the background queue. Expiry is not
//! logged: expired bindings are dropped on load and at compaction.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::ConnId;
use crate::io::Transport;
use crate::registrar::{shard_of_aor, AorKey, Binding, Change, Location, Source};

const MAGIC: &[u8; 6] = b"CSLOC\x01";
const MANIFEST: &str = "MANIFEST";
const MANIFEST_HEAD: &str = "coresip-location 1";
/// No record is larger (a binding is a few hundred bytes).
const MAX_RECORD: u32 = 16 << 20;

const KIND_HEADER: u8 = 0;
const KIND_PUT: u8 = 1;
const KIND_REMOVE: u8 = 2;
const KIND_REMOVE_ALL: u8 = 3;

const FILE_LOG: u8 = 1;
const FILE_SNAPSHOT: u8 = 2;

/// A store failure: an I/O error on a named file, or an unreadable MANIFEST.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a coresip location manifest")]
    BadManifest { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Damage found while loading; the valid prefix of the file was kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LoadWarning {
    /// The file ends inside a record (a crash mid-write).
    #[error("{path}: truncated record at byte {offset}; kept the records before it")]
    Truncated { path: PathBuf, offset: u64 },
    /// A record fails its checksum or does not decode.
    #[error("{path}: corrupt record at byte {offset}; kept the records before it")]
    Corrupt { path: PathBuf, offset: u64 },
    /// There was no MANIFEST but there were store files: the newest epoch found
    /// was loaded.
    #[error("{path}: missing; loaded epoch {epoch} from the files present")]
    MissingManifest { path: PathBuf, epoch: u64 },
}

/// What [`open`] returns: one location part and one store per shard, index =
/// shard, and the damage found.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub locations: Vec<Location>,
    pub stores: Vec<ShardStore>,
    pub warnings: Vec<LoadWarning>,
}

/// Loads the bindings in `dir` (created if missing) for `shards` shards, dropping
/// those expired at `now` and clearing connection ids (they name connections of
/// the previous process), then starts a new epoch (see the module docs).
pub(crate) fn open(dir: &Path, shards: usize, now: u64) -> Result<Loaded, StoreError> {
    let shards = shards.max(1);
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut warnings = Vec::new();
    let mut locations: Vec<Location> = (0..shards).map(|_| Location::new()).collect();

    let manifest_path = dir.join(MANIFEST);
    let files = list_store_files(dir)?;
    let epoch = match fs::read_to_string(&manifest_path) {
        Ok(text) => Some(
            parse_manifest(&text).ok_or_else(|| StoreError::BadManifest {
                path: manifest_path.clone(),
            })?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let newest = files.iter().map(|f| f.epoch).max();
            if let Some(epoch) = newest {
                warnings.push(LoadWarning::MissingManifest {
                    path: manifest_path.clone(),
                    epoch,
                });
            }
            newest
        }
        Err(e) => return Err(io_err(&manifest_path)(e)),
    };

    let mut damaged: Vec<PathBuf> = Vec::new();
    if let Some(epoch) = epoch {
        let mut old_shards: Vec<u32> = files
            .iter()
            .filter(|f| f.epoch == epoch)
            .map(|f| f.shard)
            .collect();
        old_shards.sort_unstable();
        old_shards.dedup();
        for shard in old_shards {
            let snap = dir.join(file_name(epoch, shard, "snap"));
            let log = dir.join(file_name(epoch, shard, "log"));
            let before = warnings.len();
            let expect = (epoch, shard);
            let included = load_file(&snap, expect, shards, &mut locations, None, &mut warnings)?;
            load_file(
                &log,
                expect,
                shards,
                &mut locations,
                included,
                &mut warnings,
            )?;
            for w in &warnings[before..] {
                if let LoadWarning::Truncated { path, .. } | LoadWarning::Corrupt { path, .. } = w {
                    damaged.push(path.clone());
                }
            }
        }
    }
    for loc in &mut locations {
        loc.expire(now);
    }

    // The new epoch: snapshots first, then the MANIFEST that makes them current.
    // Files of this or a later epoch are leftovers of a start that crashed before
    // its MANIFEST was written (possibly with another shard count): never current.
    let new_epoch = epoch.map_or(1, |e| e + 1);
    for f in files.iter().filter(|f| f.epoch >= new_epoch) {
        fs::remove_file(&f.path).map_err(io_err(&f.path))?;
    }
    let mut stores = Vec::with_capacity(shards);
    for (i, loc) in locations.iter().enumerate() {
        let shard = i as u32;
        let snap = dir.join(file_name(new_epoch, shard, "snap"));
        write_atomically(dir, &snap, &encode_snapshot(new_epoch, shard, 0, now, loc))?;
        stores.push(ShardStore::create(dir, new_epoch, shard, 1)?);
    }
    sync_dir(dir)?;
    let manifest = format!("{MANIFEST_HEAD}\nepoch {new_epoch}\nshards {shards}\n");
    write_atomically(dir, &manifest_path, manifest.as_bytes())?;

    // The old epoch is no longer needed; damaged files are kept for inspection.
    for f in list_store_files(dir)? {
        if f.epoch == new_epoch {
            continue;
        }
        let result = if damaged.contains(&f.path) {
            let mut to = f.path.clone().into_os_string();
            to.push(".corrupt");
            fs::rename(&f.path, to)
        } else {
            fs::remove_file(&f.path)
        };
        result.map_err(io_err(&f.path))?;
    }
    sync_dir(dir)?;
    Ok(Loaded {
        locations,
        stores,
        warnings,
    })
}

/// The persistence of one shard: its log file and pending records.
#[derive(Debug)]
pub(crate) struct ShardStore {
    dir: PathBuf,
    epoch: u64,
    shard: u32,
    log_path: PathBuf,
    log: File,
    /// Bytes of the log known to be written whole.
    log_len: u64,
    /// The generation in the log's header.
    log_gen: u64,
    /// Encoded records not yet written.
    pending: Vec<u8>,
}

impl ShardStore {
    fn create(dir: &Path, epoch: u64, shard: u32, gen: u64) -> Result<ShardStore, StoreError> {
        let log_path = dir.join(file_name(epoch, shard, "log"));
        let mut log = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let header = encode_header(FILE_LOG, epoch, shard, gen);
        log.write_all(&header).map_err(io_err(&log_path))?;
        log.sync_data().map_err(io_err(&log_path))?;
        Ok(ShardStore {
            dir: dir.to_path_buf(),
            epoch,
            shard,
            log_path,
            log,
            log_len: header.len() as u64,
            log_gen: gen,
            pending: Vec::new(),
        })
    }

    /// Queues a REGISTER's changes (in memory only: no system call).
    pub(crate) fn record(&mut self, changes: &[Change]) {
        for c in changes {
            encode_change(c, &mut self.pending);
        }
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes in the log file: a hint for when to compact.
    pub(crate) fn log_len(&self) -> u64 {
        self.log_len
    }

    /// Writes the queued records to the log (no fsync). On failure the log is cut
    /// back to its last whole record and the records stay queued.
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.log.write_all(&self.pending) {
            // Best effort: a torn record would end the file for the loader.
            let _ = self.log.set_len(self.log_len);
            let _ = self.log.seek(io::SeekFrom::Start(self.log_len));
            return Err(io_err(&self.log_path)(e));
        }
        self.log_len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes and fsyncs the queued records: after it returns they survive a
    /// crash. Call every `--sync-interval` and at shutdown.
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.log.sync_data().map_err(io_err(&self.log_path))
    }

    /// Replaces the snapshot with `location` (minus what expired at `now`) and
    /// empties the log. Queued records are dropped: the snapshot includes them.
    #[cfg(test)]
    pub(crate) fn compact(&mut self, now: u64, location: &Location) -> Result<(), StoreError> {
        let bytes = self.snapshot(now, location);
        self.compact_to(&bytes)
    }

    /// The snapshot [`ShardStore::compact_to`] writes: `location` minus what
    /// expired at `now`, encoded (no system call, for the thread that owns the
    /// location part; the writing can go elsewhere).
    pub(crate) fn snapshot(&self, now: u64, location: &Location) -> Vec<u8> {
        encode_snapshot(self.epoch, self.shard, self.log_gen, now, location)
    }

    /// [`ShardStore::compact`] with the snapshot already encoded.
    pub(crate) fn compact_to(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let snap = self.dir.join(file_name(self.epoch, self.shard, "snap"));
        write_atomically(&self.dir, &snap, snapshot)?;
        // Crash here: the snapshot names this log's generation, so the loader
        // skips the log.
        let gen = self.log_gen + 1;
        let header = encode_header(FILE_LOG, self.epoch, self.shard, gen);
        let path = self.log_path.clone();
        self.log.set_len(0).map_err(io_err(&path))?;
        self.log
            .seek(io::SeekFrom::Start(0))
            .map_err(io_err(&path))?;
        self.log.write_all(&header).map_err(io_err(&path))?;
        self.log.sync_data().map_err(io_err(&path))?;
        self.log_gen = gen;
        self.log_len = header.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

// --- files ---------------------------------------------------------------------

fn file_name(epoch: u64, shard: u32, ext: &str) -> String {
    format!("e{epoch}-s{shard}.{ext}")
}

struct StoreFile {
    path: PathBuf,
    epoch: u64,
    shard: u32,
}

/// `eE-sI.snap`, `eE-sI.log` and their `.tmp` leftovers.
fn list_store_files(dir: &Path) -> Result<Vec<StoreFile>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let stem = name.strip_suffix(".tmp").unwrap_or(name);
        let Some(stem) = stem
            .strip_suffix(".snap")
            .or_else(|| stem.strip_suffix(".log"))
        else {
            continue;
        };
        let parsed = stem
            .strip_prefix('e')
            .and_then(|s| s.split_once("-s"))
            .and_then(|(e, s)| Some((e.parse().ok()?, s.parse().ok()?)));
        if let Some((epoch, shard)) = parsed {
            out.push(StoreFile {
                path: entry.path(),
                epoch,
                shard,
            });
        }
    }
    Ok(out)
}

fn parse_manifest(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    if lines.next()? != MANIFEST_HEAD {
        return None;
    }
    lines.next()?.strip_prefix("epoch ")?.parse().ok()
}

/// Temp file, fsync, rename over `path`, fsync the directory.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Replays one file into the shards' locations. `skip_gen`: the log generation a
/// snapshot already includes (a log with it is skipped). Returns the generation
/// recorded in the file's header. A missing file is empty.
fn load_file(
    path: &Path,
    (epoch, shard): (u64, u32),
    shards: usize,
    locations: &mut [Location],
    skip_gen: Option<u64>,
    warnings: &mut Vec<LoadWarning>,
) -> Result<Option<u64>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut pos = 0usize;
    let mut gen = None;
    while pos < bytes.len() {
        let payload = match next_record(&bytes, pos) {
            Ok((payload, next)) => {
                let at = pos;
                pos = next;
                (payload, at)
            }
            Err(truncated) => {
                warnings.push(if truncated {
                    LoadWarning::Truncated {
                        path: path.to_path_buf(),
                        offset: pos as u64,
                    }
                } else {
                    LoadWarning::Corrupt {
                        path: path.to_path_buf(),
                        offset: pos as u64,
                    }
                });
                break;
            }
        };
        let (payload, at) = payload;
        let corrupt = || LoadWarning::Corrupt {
            path: path.to_path_buf(),
            offset: at as u64,
        };
        if gen.is_none() {
            // The first record must be the header, naming this file.
            match decode_header(payload) {
                Some((e, s, g)) if (e, s) == (epoch, shard) => {
                    gen = Some(g);
                    if skip_gen.is_some() && skip_gen == gen {
                        return Ok(gen);
                    }
                    continue;
                }
                _ => {
                    warnings.push(corrupt());
                    break;
                }
            }
        }
        match decode_change(payload) {
            Some(mut change) => {
                if let Change::Put { binding, .. } = &mut change {
                    binding.source.conn = None;
                }
                let shard = shard_of_aor(change.aor(), shards);
                if let Some(loc) = locations.get_mut(shard) {
                    loc.apply(&change);
                }
            }
            None => {
                warnings.push(corrupt());
                break;
            }
        }
    }
    Ok(gen)
}

/// The record at `pos`: its payload and the offset after it. `Err(true)` when the
/// file ends inside it, `Err(false)` when it is corrupt.
fn next_record(bytes: &[u8], pos: usize) -> Result<(&[u8], usize), bool> {
    let head = bytes.get(pos..pos + 8).ok_or(true)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_RECORD {
        return Err(false);
    }
    let end = pos + 8 + len as usize;
    let payload = bytes.get(pos + 8..end).ok_or(true)?;
    if crc32fast::hash(payload) != crc {
        return Err(false);
    }
    Ok((payload, end))
}

// --- encoding --------------------------------------------------------------------

/// Appends one framed record whose payload `fill` writes.
fn frame(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    fill(out);
    let payload = out.get(start + 8..).unwrap_or_default();
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    if let Some(h) = out.get_mut(start..start + 8) {
        h[..4].copy_from_slice(&len);
        h[4..].copy_from_slice(&crc);
    }
}

fn encode_header(file: u8, epoch: u64, shard: u32, gen: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    frame(&mut out, |p| {
        p.push(KIND_HEADER);
        p.extend_from_slice(MAGIC);
        p.push(file);
        p.extend_from_slice(&epoch.to_le_bytes());
        p.extend_from_slice(&shard.to_le_bytes());
        p.extend_from_slice(&gen.to_le_bytes());
    });
    out
}

fn encode_snapshot(epoch: u64, shard: u32, included_gen: u64, now: u64, loc: &Location) -> Vec<u8> {
    let mut out = encode_header(FILE_SNAPSHOT, epoch, shard, included_gen);
    for (aor, bindings) in loc.iter() {
        for b in bindings.iter().filter(|b| b.is_live(now)) {
            frame(&mut out, |p| {
                p.push(KIND_PUT);
                put_bytes(p, aor.as_bytes());
                encode_binding(b, p);
            });
        }
    }
    out
}

fn encode_change(c: &Change, out: &mut Vec<u8>) {
    frame(out, |p| match c {
        Change::Put { aor, binding } | Change::Remove { aor, binding } => {
            p.push(if matches!(c, Change::Put { .. }) {
                KIND_PUT
            } else {
                KIND_REMOVE
            });
            put_bytes(p, aor.as_bytes());
            encode_binding(binding, p);
        }
        Change::RemoveAll { aor } => {
            p.push(KIND_REMOVE_ALL);
            put_bytes(p, aor.as_bytes());
        }
    });
}

fn put_bytes(p: &mut Vec<u8>, b: &[u8]) {
    p.extend_from_slice(&(b.len() as u32).to_le_bytes());
    p.extend_from_slice(b);
}

fn encode_binding(b: &Binding, p: &mut Vec<u8>) {
    let (text, ends, reg_id, q) = b.raw_parts();
    put_bytes(p, text);
    for e in ends {
        p.extend_from_slice(&e.to_le_bytes());
    }
    p.extend_from_slice(&reg_id.to_le_bytes());
    p.extend_from_slice(&q.to_le_bytes());
    p.extend_from_slice(&b.expires_at.to_le_bytes());
    p.extend_from_slice(&b.cseq.to_le_bytes());
    let s = &b.source;
    match s.addr {
        SocketAddr::V4(a) => {
            p.push(4);
            p.extend_from_slice(&a.ip().octets());
            p.extend_from_slice(&a.port().to_le_bytes());
        }
        SocketAddr::V6(a) => {
            p.push(6);
            p.extend_from_slice(&a.ip().octets());
            p.extend_from_slice(&a.port().to_le_bytes());
            p.extend_from_slice(&a.flowinfo().to_le_bytes());
            p.extend_from_slice(&a.scope_id().to_le_bytes());
        }
    }
    p.push(transport_code(s.transport));
    match s.conn {
        None => p.push(0),
        Some(c) => {
            p.push(1);
            p.extend_from_slice(&c.shard.to_le_bytes());
            p.extend_from_slice(&c.seq.to_le_bytes());
        }
    }
    p.extend_from_slice(&s.listener.to_le_bytes());
    p.push(u8::from(s.nat));
}

// --- decoding --------------------------------------------------------------------

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// (epoch, shard, generation) of a header record.
fn decode_header(payload: &[u8]) -> Option<(u64, u32, u64)> {
    let mut c = Cursor(payload);
    if c.u8()? != KIND_HEADER || c.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let _file = c.u8()?;
    Some((c.u64()?, c.u32()?, c.u64()?))
}

fn decode_change(payload: &[u8]) -> Option<Change> {
    let mut c = Cursor(payload);
    let kind = c.u8()?;
    let aor = AorKey::from_canonical(c.bytes()?);
    let change = match kind {
        KIND_PUT => Change::Put {
            aor,
            binding: decode_binding(&mut c)?,
        },
        KIND_REMOVE => Change::Remove {
            aor,
            binding: decode_binding(&mut c)?,
        },
        KIND_REMOVE_ALL => Change::RemoveAll { aor },
        _ => return None,
    };
    c.0.is_empty().then_some(change)
}

fn decode_binding(c: &mut Cursor<'_>) -> Option<Binding> {
    let text: Arc<[u8]> = c.bytes()?.into();
    let ends = [c.u32()?, c.u32()?, c.u32()?];
    let reg_id = c.u32()?;
    let q = c.u16()?;
    let expires_at = c.u64()?;
    let cseq = c.u32()?;
    let addr = match c.u8()? {
        4 => {
            let ip: [u8; 4] = c.array()?;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), c.u16()?))
        }
        6 => {
            let ip: [u8; 16] = c.array()?;
            let port = c.u16()?;
            let flow = c.u32()?;
            let scope = c.u32()?;
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
        }
        _ => return None,
    };
    let transport = transport_of(c.u8()?)?;
    let conn = match c.u8()? {
        0 => None,
        1 => Some(ConnId {
            shard: c.u16()?,
            seq: c.u64()?,
        }),
        _ => return None,
    };
    let listener = c.u16()?;
    // Added after the first format: absent means "no NAT seen".
    let nat = c.u8().is_some_and(|f| f & 1 == 1);
    let source = Source {
        addr,
        transport,
        conn,
        listener,
        nat,
    };
    Binding::from_raw_parts(text, ends, reg_id, q, expires_at, cseq, source)
}

/// A transport's code in the store (the codes of the first format: 3 to 5 were
/// kept for SCTP, WS and WSS, which no binding has come over yet).
fn transport_code(t: Transport) -> u8 {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
    }
}

/// The transport of a store code.
fn transport_of(code: u8) -> Option<Transport> {
    match code {
        0 => Some(Transport::Udp),
        1 => Some(Transport::Tcp),
        2 => Some(Transport::Tls),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A log header record.
    pub(crate) fn header_bytes(epoch: u64, shard: u32, gen: u64) -> Vec<u8> {
        encode_header(FILE_LOG, epoch, shard, gen)
    }

    #[test]
    fn header_names_its_file() {
        let h = header_bytes(2, 3, 9);
        assert_eq!(h.len(), 36);
        let (payload, _) = next_record(&h, 0).unwrap();
        assert_eq!(decode_header(payload), Some((2, 3, 9)));
    }
    use crate::registrar::location::tests::{aor, binding};

    #[test]
    fn change_encoding_round_trips() {
        let a = aor("sip:alice@example.com");
        let mut b = binding("sip:alice@[2001:db8::1]:5060", 1000, Some("0.3"));
        b.source.addr = "[2001:db8::9]:5070".parse().unwrap();
        for c in [
            Change::Put {
                aor: a.clone(),
                binding: b.clone(),
            },
            Change::Remove {
                aor: a.clone(),
                binding: b.clone(),
            },
            Change::RemoveAll { aor: a.clone() },
        ] {
            let mut out = Vec::new();
            encode_change(&c, &mut out);
            let (payload, end) = next_record(&out, 0).unwrap();
            assert_eq!(end, out.len());
            assert_eq!(decode_change(payload), Some(c));
        }
    }
}
