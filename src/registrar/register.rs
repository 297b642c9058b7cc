//! REGISTER processing (RFC 3261 §10.3 steps 1–8, with Path, RFC 3327 §5.3, and
//! the registrar side of SIP Outbound, RFC 5626 §6) as a pure function of the
//! request, the source it came from and the time: no socket, no clock.
//!
//! [`Registrar::on_register`] decides, updates the shard's [`Location`] atomically
//! (every contact of the request is applied, or none: §10.3 "processed
//! atomically"), writes the whole response, and returns the [`Change`]s for the
//! store to log.
//!
//! Choices where the RFCs leave room:
//! - Step 1: a Request-URI outside our domains writes nothing and returns
//!   [`RegisterOutcome::ForeignDomain`]: the caller relays it (§10.3 step 1 SHOULD)
//!   or answers 403 ([`Registrar::reject_foreign`]).
//! - Step 5: the To host must be one of our domains (not necessarily the
//!   Request-URI's, which may be an address of ours), else 404.
//! - Steps 6/7: a request with the same Call-ID and a CSeq not higher than a
//!   binding's fails with `500 Out of Order Request` ("the update MUST be aborted
//!   and the request fails"; 500 as for any failed update). Note: the SER-lineage
//!   registrars (Kamailio, OpenSIPS) answer such a request `200` without changing
//!   anything (their `R_OOO`/`R_RETRANS`), which hides retransmissions that slipped
//!   past the transaction layer; here the server transaction absorbs those.
//! - Too many contacts: `403 Too Many Registered Contacts` (OpenSIPS answers 503
//!   for its `R_TOO_MANY`, which invites a retry that cannot succeed), or with
//!   `replace_oldest` the oldest bindings not written by this request are dropped.
//! - Step 2 supports the option tags `path` and `outbound`; a Path from a UA that
//!   does not list `path` in Supported is rejected with 420 (RFC 3327 §5.3's
//!   recommended policy) unless `path_requires_supported` is off.

use smallvec::SmallVec;

use super::aor::AorKey;
use super::location::{apply_to, Applied, Binding, BindingFields, Change, Location, Source};
use crate::sip::header::HeaderName;
use crate::sip::host::Host;
use crate::sip::message::Message;
use crate::sip::method::Method;
use crate::sip::name_addr::{Contact, NameAddr, QValue};
use crate::sip::text::eq_ic;
use crate::sip::writer::write_response;

/// Option tags this registrar supports (RFC 3261 §10.3 step 2, §8.2.2.3).
const SUPPORTED: [&[u8]; 2] = [b"path", b"outbound"];

/// Registrar settings (the `--domain`, `--min-expires`, … flags).
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// The domains whose bindings we keep (host names or IP literals).
    pub domains: Vec<String>,
    /// Expiry when the request names none (RFC 3261 §10.3 step 7): 3600.
    pub default_expires: u32,
    /// Shorter non-zero requests get 423 with Min-Expires (§10.3 step 7).
    pub min_expires: u32,
    /// Longer requests are granted this much (§10.3 step 7: "MAY choose an
    /// expiration less than the requested").
    pub max_expires: u32,
    /// Bindings per AOR; 0 means no limit.
    pub max_contacts: usize,
    /// When `max_contacts` is exceeded, drop the oldest bindings instead of
    /// rejecting the request.
    pub replace_oldest: bool,
    /// Reject a Path the UA did not declare support for (RFC 3327 §5.3).
    pub path_requires_supported: bool,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            domains: Vec::new(),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 0,
            replace_oldest: false,
            path_requires_supported: true,
        }
    }
}

/// A configured domain that is not a valid host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid registrar domain {0:?}")]
pub struct BadDomain(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnHost {
    Name(Box<str>),
    Ip(std::net::IpAddr),
}

impl OwnHost {
    fn matches(&self, host: &Host<'_>) -> bool {
        match (self, host) {
            (OwnHost::Name(n), Host::Domain(d)) => {
                eq_ic(d.strip_suffix('.').unwrap_or(d).as_bytes(), n.as_bytes())
            }
            (OwnHost::Ip(a), h) => h.ip() == Some(*a),
            _ => false,
        }
    }
}

/// What [`Registrar::on_register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The Request-URI is not one of our domains. Nothing was written: relay the
    /// request, or answer it with [`Registrar::reject_foreign`].
    ForeignDomain,
    /// The message is not a REGISTER request. Nothing was written.
    NotRegister,
    /// A response with this status was written. `changes` (empty unless the status
    /// is 200) are to be logged by the store, in order.
    Answered { status: u16, changes: Vec<Change> },
}

/// A REGISTER that failed: status, reason and an optional extra header.
#[derive(Debug)]
struct Reject {
    code: u16,
    reason: &'static str,
    header: Option<(&'static str, Vec<u8>)>,
}

fn reject(code: u16, reason: &'static str) -> Reject {
    Reject {
        code,
        reason,
        header: None,
    }
}

/// What a successful REGISTER does.
struct Accepted {
    aor: AorKey,
    changes: Vec<Change>,
    /// The Path values to echo, joined (RFC 3327 §5.3).
    path: Vec<u8>,
    /// RFC 5626 §6: `Require: outbound` in the 200.
    require_outbound: bool,
}

/// One Contact of the request after validation.
struct Item<'a> {
    uri: &'a [u8],
    expires: u32,
    q: Option<QValue>,
    instance: Option<&'a [u8]>,
    reg_id: Option<u32>,
}

/// The registrar of one shard: configuration and the shard's location part.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    domains: Vec<OwnHost>,
    location: Location,
    date: DateCache,
}

/// The length of an `rfc1123-date` with a four-digit year.
const HTTP_DATE_LEN: usize = 29;

/// The `Date` of the last 200, by second: every 200 to a REGISTER carries one
/// (RFC 3261 §10.3 step 8), and within a second they are all the same text.
#[derive(Debug, Clone, Copy)]
struct DateCache {
    /// The second `text` was written for (`u64::MAX`: none yet).
    secs: u64,
    text: [u8; HTTP_DATE_LEN],
}

impl DateCache {
    fn new() -> DateCache {
        DateCache {
            secs: u64::MAX,
            text: [0; HTTP_DATE_LEN],
        }
    }

    /// Appends the date of `secs` to `out`.
    fn write(&mut self, secs: u64, out: &mut Vec<u8>) {
        if secs != self.secs {
            let mut text = Vec::with_capacity(HTTP_DATE_LEN);
            write_http_date(secs, &mut text);
            match <[u8; HTTP_DATE_LEN]>::try_from(text.as_slice()) {
                Ok(t) => {
                    self.text = t;
                    self.secs = secs;
                }
                // Not the length every date has: written as it is, not remembered.
                Err(_) => {
                    out.extend_from_slice(&text);
                    return;
                }
            }
        }
        out.extend_from_slice(&self.text);
    }
}

impl Registrar {
    /// A registrar with an empty location part.
    pub fn new(config: RegistrarConfig) -> Result<Registrar, BadDomain> {
        Registrar::with_location(config, Location::new())
    }

    /// A registrar over bindings loaded by the store.
    pub fn with_location(
        config: RegistrarConfig,
        location: Location,
    ) -> Result<Registrar, BadDomain> {
        let domains = config
            .domains
            .iter()
            .map(|d| {
                let bare = d.strip_suffix('.').unwrap_or(d);
                match Host::parse(bare.as_bytes()) {
                    Ok(Host::Domain(_)) => Ok(OwnHost::Name(bare.to_ascii_lowercase().into())),
                    Ok(h) => h.ip().map(OwnHost::Ip).ok_or_else(|| BadDomain(d.clone())),
                    Err(_) => Err(BadDomain(d.clone())),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Registrar {
            config,
            domains,
            location,
            date: DateCache::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The shard's bindings (lookups, expiry, snapshots).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The shard's bindings, mutably (the tick's [`Location::expire`]).
    pub fn location_mut(&mut self) -> &mut Location {
        &mut self.location
    }

    /// True when `host` is one of our domains.
    pub fn is_our_domain(&self, host: &Host<'_>) -> bool {
        self.domains.iter().any(|d| d.matches(host))
    }

    /// Answers a REGISTER for a foreign domain with 403 (RFC 3261 §10.3 step 1,
    /// when the policy is not to relay it).
    pub fn reject_foreign(&self, msg: &Message<'_>, out: &mut Vec<u8>) {
        let _ = write_response(msg, 403, b"Not Our Domain", Some(&to_tag(msg)), &[], out);
    }

    /// Processes a REGISTER received at `now` (seconds since the UNIX epoch) from
    /// `source`, writing the response to `out`; the bindings it writes carry
    /// `version` ([`super::location::Version`]: 0 when one shard holds every
    /// binding). Authentication (§10.3 steps 3–4) is the caller's, before this
    /// call.
    pub fn on_register(
        &mut self,
        now: u64,
        version: u64,
        msg: &Message<'_>,
        source: Source,
        out: &mut Vec<u8>,
    ) -> RegisterOutcome {
        if msg.method() != Some(Method::Register) {
            return RegisterOutcome::NotRegister;
        }
        // Step 1: our domain? A Request-URI that is not even a SIP URI is not.
        let ruri_host = msg.uri().ok().and_then(|u| u.as_sip().map(|s| s.host));
        match ruri_host {
            Some(h) if self.is_our_domain(&h) => {}
            _ => return RegisterOutcome::ForeignDomain,
        }
        match self.process(now, version, msg, source) {
            Ok(mut acc) => {
                // A change the location refuses (another shard's newer write to
                // the binding is held) is nothing to persist or replicate.
                acc.changes
                    .retain(|c| self.location.apply(c) != Applied::Unchanged);
                self.write_ok(now, msg, &acc, out);
                RegisterOutcome::Answered {
                    status: 200,
                    changes: acc.changes,
                }
            }
            Err(rej) => {
                let extra: SmallVec<[(&str, &[u8]); 1]> =
                    rej.header.iter().map(|(n, v)| (*n, v.as_slice())).collect();
                let _ = write_response(
                    msg,
                    rej.code,
                    rej.reason.as_bytes(),
                    Some(&to_tag(msg)),
                    &extra,
                    out,
                );
                RegisterOutcome::Answered {
                    status: rej.code,
                    changes: Vec::new(),
                }
            }
        }
    }

    /// Steps 2 and 5–7: validates the request and computes its changes against a
    /// tentative copy of the AOR's bindings. Nothing is modified but expired
    /// bindings of the AOR.
    fn process(
        &mut self,
        now: u64,
        version: u64,
        msg: &Message<'_>,
        source: Source,
    ) -> Result<Accepted, Reject> {
        // Step 2: Require (§8.2.2.3: 420 listing what we do not support).
        let mut unsupported = Vec::new();
        for tag in msg.require() {
            let tag = tag.map_err(|_| reject(400, "Bad Require"))?;
            if !SUPPORTED.iter().any(|s| eq_ic(s, tag)) {
                if !unsupported.is_empty() {
                    unsupported.extend_from_slice(b", ");
                }
                unsupported.extend_from_slice(tag);
            }
        }
        if !unsupported.is_empty() {
            return Err(Reject {
                code: 420,
                reason: "Bad Extension",
                header: Some(("Unsupported", unsupported)),
            });
        }

        // Step 5: the AOR.
        let to_uri = msg.to_uri().map_err(|_| reject(400, "Bad To"))?;
        // §10.2: the AOR MUST be a SIP or SIPS URI.
        let to_sip = to_uri
            .as_sip()
            .ok_or_else(|| reject(400, "To Is Not a SIP URI"))?;
        if !self.is_our_domain(&to_sip.host) {
            return Err(reject(404, "Not Found"));
        }
        let aor = AorKey::from_sip_uri(to_sip).map_err(|_| reject(400, "Bad To"))?;
        let call_id = msg.call_id().map_err(|_| reject(400, "Bad Call-ID"))?;
        let cseq = msg.cseq().map_err(|_| reject(400, "Bad CSeq"))?.seq;
        let supports_path = msg
            .supported()
            .contains(b"path")
            .map_err(|_| reject(400, "Bad Supported"))?;
        let supports_outbound = msg
            .supported()
            .contains(b"outbound")
            .map_err(|_| reject(400, "Bad Supported"))?;

        // RFC 3327 §5.3: the Path values, in order.
        let mut path = Vec::new();
        let mut first_path_has_ob = false;
        for (i, v) in msg.values(HeaderName::Path).enumerate() {
            let na = NameAddr::parse_name_addr(v).map_err(|_| reject(400, "Bad Path"))?;
            if i == 0 {
                first_path_has_ob = na
                    .parse_uri()
                    .ok()
                    .and_then(|u| u.as_sip().map(|s| s.params.contains(b"ob")))
                    .unwrap_or(false);
                path.reserve(v.len());
            } else {
                path.extend_from_slice(b", ");
            }
            // A folded value keeps its CRLF: folding is a space (§7.3.1).
            path.extend(
                v.iter()
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        }
        if !path.is_empty() && !supports_path && self.config.path_requires_supported {
            return Err(Reject {
                code: 420,
                reason: "Bad Extension",
                header: Some(("Unsupported", b"path".to_vec())),
            });
        }

        let header_expires = msg.expires().map_err(|_| reject(400, "Bad Expires"))?;
        let contacts = msg
            .contacts()
            .collect::<Result<SmallVec<[Contact<'_>; 4]>, _>>()
            .map_err(|_| reject(400, "Bad Contact"))?;

        // Expired bindings take no part in the rules below.
        self.location.sweep_aor(&aor, now);
        let existing = self.location.bindings(&aor);

        let mut accepted = Accepted {
            aor,
            changes: Vec::new(),
            path,
            require_outbound: false,
        };
        if contacts.is_empty() {
            // Step 6: no Contact is a query; skip to step 8.
            return Ok(accepted);
        }

        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            // Step 6: `*` only alone and with `Expires: 0`.
            if contacts.len() != 1 {
                return Err(reject(400, "Contact * Must Be Alone"));
            }
            if header_expires != Some(0) {
                return Err(reject(400, "Contact * Requires Expires: 0"));
            }
            // Step 6: a binding with the same Call-ID is removed only when the
            // CSeq is higher, else the whole update is aborted.
            if existing
                .iter()
                .any(|b| b.call_id() == call_id && cseq <= b.cseq)
            {
                return Err(reject(500, "Out of Order Request"));
            }
            // One removal per binding rather than "all": another shard may have
            // accepted a binding this one has not heard of yet, which a removal
            // made before it must not take away (last writer wins per binding).
            for old in existing {
                accepted.changes.push(Change::Remove {
                    aor: accepted.aor.clone(),
                    binding: old.clone().with_version(version),
                });
            }
            return Ok(accepted);
        }

        // RFC 5626 §6: outbound applies only when we are the first hop or the
        // first Path URI carries `ob`.
        let first_hop = msg.values(HeaderName::Via).nth(1).is_none();
        let outbound_ok = first_hop || first_path_has_ob;

        // Every contact's URI is valid (the first one's decoding is shared with
        // the message check and the NAT test).
        for uri in msg.contact_uris() {
            uri.map_err(|_| reject(400, "Bad Contact"))?;
        }
        // Step 7, first half: each contact's expiry.
        let mut items: SmallVec<[Item<'_>; 4]> = SmallVec::new();
        for c in &contacts {
            let Contact::Addr(addr) = c else {
                continue;
            };
            let requested = c
                .expires()
                .map_err(|_| reject(400, "Bad Contact Expires"))?
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            // Step 7: 423 iff 0 < requested < 1 hour and below our minimum.
            if requested > 0 && requested < 3600 && requested < self.config.min_expires {
                return Err(Reject {
                    code: 423,
                    reason: "Interval Too Brief",
                    header: Some((
                        "Min-Expires",
                        self.config.min_expires.to_string().into_bytes(),
                    )),
                });
            }
            let q = c.q().map_err(|_| reject(400, "Bad q Value"))?;
            let instance = c.instance().filter(|i| !i.is_empty());
            // RFC 5626 §6: a reg-id without an instance is ignored.
            let mut reg_id = c.reg_id().filter(|_| instance.is_some());
            if reg_id.is_some() && !outbound_ok {
                if supports_outbound {
                    return Err(reject(439, "First Hop Lacks Outbound Support"));
                }
                reg_id = None;
            }
            items.push(Item {
                uri: addr.uri,
                expires: requested.min(self.config.max_expires),
                q,
                instance,
                reg_id,
            });
        }
        // RFC 5626 §6: a reg-id registers one flow: with more than one non-zero
        // contact, none may carry a reg-id.
        let nonzero = items.iter().filter(|i| i.expires > 0).count();
        if nonzero > 1 && items.iter().any(|i| i.expires > 0 && i.reg_id.is_some()) {
            return Err(reject(400, "Multiple Contacts With reg-id"));
        }
        accepted.require_outbound = supports_outbound && items.iter().any(|i| i.reg_id.is_some());

        // Step 7, second half: against a tentative copy, so that a failure leaves
        // every binding as it was.
        let mut tentative: Vec<Binding> = existing.to_vec();
        let mut written: SmallVec<[Binding; 4]> = SmallVec::new();
        for item in &items {
            let binding = Binding::new(&BindingFields {
                contact: item.uri,
                call_id,
                cseq,
                expires_at: now.saturating_add(u64::from(item.expires)),
                q: item.q,
                instance: item.instance,
                reg_id: item.reg_id,
                path: &accepted.path,
                source,
            })
            .map(|b| b.with_version(version))
            .ok_or_else(|| reject(400, "Contact Too Long"))?;
            let change = match tentative.iter().find(|b| b.same_binding(&binding)) {
                Some(old) => {
                    // A contact listed twice in this request is not out of order
                    // with itself: the later value wins.
                    let ours = written.iter().any(|w| w.same_binding(old));
                    if !ours && old.call_id() == call_id && cseq <= old.cseq {
                        return Err(reject(500, "Out of Order Request"));
                    }
                    if item.expires == 0 {
                        Change::Remove {
                            aor: accepted.aor.clone(),
                            binding: old.clone().with_version(version),
                        }
                    } else {
                        written.push(binding.clone());
                        Change::Put {
                            aor: accepted.aor.clone(),
                            binding,
                        }
                    }
                }
                // Removing what is not there changes nothing.
                None if item.expires == 0 => continue,
                None => {
                    written.push(binding.clone());
                    Change::Put {
                        aor: accepted.aor.clone(),
                        binding,
                    }
                }
            };
            apply_to(&mut tentative, &change);
            accepted.changes.push(change);
        }

        let max = self.config.max_contacts;
        if max > 0 && tentative.len() > max {
            if !self.config.replace_oldest {
                return Err(reject(403, "Too Many Registered Contacts"));
            }
            // Oldest first, never one this request wrote.
            let mut excess = tentative.len() - max;
            let mut drop = Vec::new();
            for b in &tentative {
                if excess == 0 {
                    break;
                }
                if !written.iter().any(|w| w.same_binding(b)) {
                    drop.push(b.clone());
                    excess -= 1;
                }
            }
            if excess > 0 {
                return Err(reject(403, "Too Many Registered Contacts"));
            }
            for binding in drop {
                accepted.changes.push(Change::Remove {
                    aor: accepted.aor.clone(),
                    binding: binding.with_version(version),
                });
            }
        }
        Ok(accepted)
    }

    /// Step 8: the 200 lists every current binding with its remaining expiry, a
    /// Date, the Path echoed (RFC 3327 §5.3) and our support for it.
    fn write_ok(&mut self, now: u64, msg: &Message<'_>, acc: &Accepted, out: &mut Vec<u8>) {
        let contacts = self.location.lookup(&acc.aor, now);
        let mut text = Vec::with_capacity(contacts.len() * 96 + 64);
        let mut ranges: SmallVec<[(&str, std::ops::Range<usize>); 8]> = SmallVec::new();
        for b in &contacts {
            let start = text.len();
            write_contact(b, now, &mut text);
            ranges.push(("Contact", start..text.len()));
        }
        let start = text.len();
        self.date.write(now, &mut text);
        ranges.push(("Date", start..text.len()));
        if !acc.path.is_empty() {
            let start = text.len();
            text.extend_from_slice(&acc.path);
            ranges.push(("Path", start..text.len()));
        }
        let start = text.len();
        text.extend_from_slice(b"path");
        ranges.push(("Supported", start..text.len()));
        if acc.require_outbound {
            let start = text.len();
            text.extend_from_slice(b"outbound");
            ranges.push(("Require", start..text.len()));
        }
        let extra: SmallVec<[(&str, &[u8]); 8]> = ranges
            .iter()
            .map(|(n, r)| (*n, text.get(r.clone()).unwrap_or_default()))
            .collect();
        let tag = to_tag(msg);
        if write_response(msg, 200, b"OK", Some(&tag), &extra, out).is_err() {
            // Only a stored value with a line break could get here; answer without
            // the listing rather than not at all.
            let _ = write_response(msg, 200, b"OK", Some(&tag), &[], out);
        }
    }
}

/// `<uri>;expires=N[;q=…][;+sip.instance="…";reg-id=N]`.
fn write_contact(b: &Binding, now: u64, out: &mut Vec<u8>) {
    out.push(b'<');
    out.extend_from_slice(b.contact());
    out.extend_from_slice(b">;expires=");
    out.extend_from_slice(b.remaining(now).to_string().as_bytes());
    if let Some(q) = b.q() {
        out.extend_from_slice(b";q=");
        write_q(q, out);
    }
    if let Some(instance) = b.instance() {
        // RFC 5626 §4.1: the instance is echoed as a quoted string.
        out.extend_from_slice(b";+sip.instance=\"");
        out.extend_from_slice(instance);
        out.push(b'"');
        if let Some(reg_id) = b.reg_id() {
            out.extend_from_slice(b";reg-id=");
            out.extend_from_slice(reg_id.to_string().as_bytes());
        }
    }
}

/// `1`, `0`, `0.5`, `0.075`: the shortest `qvalue` (RFC 3261 §25.1).
fn write_q(q: QValue, out: &mut Vec<u8>) {
    let t = q.thousandths();
    if t >= 1000 {
        out.push(b'1');
        return;
    }
    out.push(b'0');
    if t == 0 {
        return;
    }
    out.push(b'.');
    let digits = [t / 100, t / 10 % 10, t % 10];
    let len = if digits[2] != 0 {
        3
    } else if digits[1] != 0 {
        2
    } else {
        1
    };
    out.extend(digits.iter().take(len).map(|&d| b'0' + d as u8));
}

/// A To tag for our responses, the same for every retransmission of a request:
/// derived from its Call-ID and CSeq (§8.2.6.2 only asks for uniqueness).
fn to_tag(msg: &Message<'_>) -> [u8; 16] {
    let state = ahash::RandomState::with_seeds(0x7265_6769, 0x7374_6172, 0x746f_7461, 0x6720_2020);
    let h = state.hash_one((msg.header(HeaderName::CallId), msg.header(HeaderName::CSeq)));
    let mut tag = [0u8; 16];
    for (i, t) in tag.iter_mut().enumerate() {
        *t = b"0123456789abcdef"[((h >> (60 - 4 * i)) & 0xf) as usize];
    }
    tag
}

/// The `rfc1123-date` of RFC 3261 §20.17 (`Sat, 13 Nov 2010 23:29:00 GMT`) for
/// `secs` since the UNIX epoch.
pub(crate) fn write_http_date(secs: u64, out: &mut Vec<u8>) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (the proleptic Gregorian algorithm
    // of H. Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Written digit by digit: every REGISTER's 200 carries a Date, and format!()
    // cost ~3k instructions (an allocation and the formatting machinery) per answer.
    let two = |out: &mut Vec<u8>, n: u64| {
        out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8])
    };
    out.extend_from_slice(DAYS[(days % 7) as usize].as_bytes());
    out.extend_from_slice(b", ");
    two(out, day as u64);
    out.push(b' ');
    out.extend_from_slice(MONTHS[(month - 1) as usize].as_bytes());
    out.push(b' ');
    let year = year.max(0) as u64;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b' ');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.extend_from_slice(b" GMT");
}
