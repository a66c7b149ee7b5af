//! Server-assisted client-side caching: CLIENT TRACKING / CACHING / GETREDIR /
//! TRACKINGINFO and the invalidation engine behind them.
//!
//! Default mode remembers, per key name, the clients that read it (read-only commands);
//! the first change of the key sends them one invalidation and forgets the key. BCAST mode
//! sends every change of a key under one of the client's prefixes, batched per prefix at the
//! end of the command. Messages are RESP3 pushes (`>2 invalidate [keys]`), or, for a RESP2
//! client redirecting to a subscribed connection, `message __redis__:invalidate [keys]`.
//! A flush invalidates everything with a null instead of the keys.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;

use crate::resp::{Frame, ProtocolVersion};
use crate::server::client::ClientState;
use crate::server::command::{flags, CommandSpec, Ctx};
use crate::server::state::ServerState;

const INVALIDATE_CHANNEL: &str = "__redis__:invalidate";

/// One client's tracking mode (present while tracking is on).
#[derive(Debug, Clone, Default)]
pub struct ClientTracking {
    /// Client receiving the invalidations instead of this one (0 = none).
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING was given for the next command (YES in OPTIN, NO in OPTOUT mode).
    pub caching: bool,
    /// The redirect target disconnected.
    pub redirect_broken: bool,
    /// BCAST prefixes, sorted (TRACKINGINFO lists them in order).
    pub prefixes: BTreeSet<Bytes>,
}

/// Keys changed under one BCAST prefix since the last broadcast, with who changed them.
#[derive(Debug, Default)]
struct PrefixState {
    clients: HashSet<u64>,
    /// Key -> id of the client that changed it (0 = the server itself), sorted as Redis's rax.
    pending: BTreeMap<Bytes, u64>,
}

/// The server side: which clients may cache which keys.
#[derive(Debug, Default)]
pub struct TrackingTable {
    /// Key name (any db, as in Redis) -> ids of clients that read it.
    keys: HashMap<Bytes, HashSet<u64>>,
    /// Total key/client pairs ever remembered and still in the table (INFO).
    items: usize,
    prefixes: BTreeMap<Bytes, PrefixState>,
    /// Clients with tracking on.
    clients: usize,
    /// Invalidations for the client running the current command: they follow its reply.
    pending_for_current: Vec<(u64, Frame)>,
    /// Runs of [`limit_used_slots`] in a row that ended still over the limit.
    limit_timeouts: usize,
}

impl TrackingTable {
    /// True when any client has tracking on or anything is left to send (hot-path check).
    pub fn is_active(&self) -> bool {
        self.clients > 0 || !self.pending_for_current.is_empty()
    }

    pub fn tracking_clients(&self) -> usize {
        self.clients
    }

    /// INFO stats: tracking_total_keys, tracking_total_items, tracking_total_prefixes.
    pub fn totals(&self) -> (usize, usize, usize) {
        (self.keys.len(), self.items, self.prefixes.len())
    }
}

// ------------------------------------------------------------------ remembering keys

/// After a read-only command: remember its keys for the calling client (default mode),
/// honouring OPTIN/OPTOUT and CLIENT CACHING.
pub fn remember_keys(srv: &mut ServerState, client: &ClientState, spec: &CommandSpec, args: &[Bytes]) {
    if tracks_read(client, spec) {
        remember(srv, client.id, spec.key_indices(args).into_iter().map(|i| &args[i]));
    }
}

/// A read command run by a script: Redis 7.0 tracks the keys its caller's EVAL / FCALL
/// declared, not the ones the script reads.
pub fn remember_script_read(srv: &mut ServerState, client: &ClientState, spec: &CommandSpec, declared: &[Bytes]) {
    if tracks_read(client, spec) {
        remember(srv, client.id, declared.iter());
    }
}

fn tracks_read(client: &ClientState, spec: &CommandSpec) -> bool {
    let Some(t) = &client.tracking else {
        return false;
    };
    !(t.bcast || !spec.has(flags::READONLY) || spec.has(flags::PUBSUB) || (t.optin && !t.caching) || (t.optout && t.caching))
}

fn remember<'a>(srv: &mut ServerState, id: u64, keys: impl Iterator<Item = &'a Bytes>) {
    for key in keys {
        let ids = srv.tracking.keys.entry(key.clone()).or_default();
        if ids.insert(id) {
            srv.tracking.items += 1;
        }
    }
}

/// CLIENT CACHING lasts for one command (all of a MULTI/EXEC, and CLIENT commands keep it).
pub fn command_done(client: &mut ClientState, spec: &CommandSpec) {
    if let Some(t) = client.tracking.as_mut() {
        if t.caching && client.multi.is_none() && !spec.name.starts_with("client") {
            t.caching = false;
        }
    }
}

// ------------------------------------------------------------------ invalidation

/// A key changed (any db): tell the clients that cache it, and queue it for BCAST prefixes.
pub fn invalidate_key(srv: &mut ServerState, current: Option<&mut ClientState>, key: &[u8]) {
    let origin = current.as_ref().map(|c| c.id).unwrap_or(0);
    if !srv.tracking.prefixes.is_empty() {
        for (prefix, state) in srv.tracking.prefixes.iter_mut() {
            if key.starts_with(prefix) {
                state.pending.insert(Bytes::copy_from_slice(key), origin);
            }
        }
        if current.is_none() {
            // Active expiry, eviction: no command to wait for.
            broadcast_pending(srv, None);
        }
    }
    invalidate_readers(srv, current, key, origin);
}

/// The default-mode half of [`invalidate_key`]: the clients that read `key` get one
/// invalidation and the key leaves the table; `origin` is the client that changed it
/// (NOLOOP), 0 for the server itself.
fn invalidate_readers(srv: &mut ServerState, mut current: Option<&mut ClientState>, key: &[u8], origin: u64) {
    let Some(ids) = srv.tracking.keys.remove(key) else {
        return;
    };
    srv.tracking.items = srv.tracking.items.saturating_sub(ids.len());
    let keys = Frame::Array(vec![Frame::Bulk(Bytes::copy_from_slice(key))]);
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable();
    for id in ids {
        let mode = if Some(id) == current.as_ref().map(|c| c.id) {
            current.as_ref().and_then(|c| c.tracking.clone())
        } else {
            srv.clients.get(&id).and_then(|c| c.tracking.clone())
        };
        let Some(mode) = mode else {
            continue;
        };
        if mode.bcast || (mode.noloop && id == origin) {
            continue;
        }
        send_invalidation(srv, current.as_deref_mut(), id, keys.clone());
    }
}

/// `trackingLimitUsedSlots`: while the table remembers more keys than
/// `tracking-table-max-keys` (0 = no limit), keys leave it with an invalidation to their
/// readers, as if the server had changed them (no NOLOOP, no BCAST). The effort grows by 100
/// keys for every run that ended still over the limit. Redis runs it from serverCron and
/// before every command.
pub fn limit_used_slots(srv: &mut ServerState, mut current: Option<&mut ClientState>) {
    let max_keys = srv.limits.tracking_table_max_keys;
    if max_keys == 0 || srv.tracking.keys.len() <= max_keys {
        srv.tracking.limit_timeouts = 0;
        return;
    }
    let mut effort = 100 * (srv.tracking.limit_timeouts + 1);
    while effort > 0 {
        effort -= 1;
        // An arbitrary victim (the map's order follows its randomly seeded hash), where
        // Redis takes a random walk of its key radix tree.
        let Some(key) = srv.tracking.keys.keys().next().cloned() else {
            break;
        };
        invalidate_readers(srv, current.as_deref_mut(), &key, 0);
        if srv.tracking.keys.len() <= max_keys {
            srv.tracking.limit_timeouts = 0;
            return;
        }
    }
    srv.tracking.limit_timeouts += 1;
}

/// FLUSHALL / FLUSHDB: every tracking client drops its whole cache (a null invalidation),
/// and the table is emptied.
pub fn invalidate_all(srv: &mut ServerState, mut current: Option<&mut ClientState>) {
    if srv.tracking.clients > 0 {
        let mut ids: Vec<u64> = srv.clients.iter().filter(|(_, c)| c.tracking.is_some()).map(|(id, _)| *id).collect();
        if let Some(cur) = current.as_ref().filter(|c| c.tracking.is_some()) {
            ids.push(cur.id);
        }
        ids.sort_unstable();
        for id in ids {
            send_invalidation(srv, current.as_deref_mut(), id, Frame::Null);
        }
    }
    srv.tracking.keys.clear();
    srv.tracking.items = 0;
}

/// Sends the keys changed under each BCAST prefix to that prefix's clients (Redis does
/// this before going back to the event loop; we do it at the end of every command).
pub fn broadcast_pending(srv: &mut ServerState, mut current: Option<&mut ClientState>) {
    let mut messages: Vec<(u64, Frame)> = Vec::new();
    for state in srv.tracking.prefixes.values_mut() {
        if state.pending.is_empty() {
            continue;
        }
        let pending = std::mem::take(&mut state.pending);
        let mut clients: Vec<u64> = state.clients.iter().copied().collect();
        clients.sort_unstable();
        for id in clients {
            let noloop = if Some(id) == current.as_ref().map(|c| c.id) {
                current.as_ref().and_then(|c| c.tracking.as_ref()).is_some_and(|t| t.noloop)
            } else {
                srv.clients.get(&id).and_then(|c| c.tracking.as_ref()).is_some_and(|t| t.noloop)
            };
            let keys: Vec<Frame> = pending.iter().filter(|(_, &origin)| !(noloop && origin == id)).map(|(k, _)| Frame::Bulk(k.clone())).collect();
            if !keys.is_empty() {
                messages.push((id, Frame::Array(keys)));
            }
        }
    }
    for (id, keys) in messages {
        send_invalidation(srv, current.as_deref_mut(), id, keys);
    }
}

/// `sendTrackingMessage`: to the client or its redirect target, in the form its protocol
/// allows; `keys` is an array of names or a null (flush).
fn send_invalidation(srv: &mut ServerState, mut current: Option<&mut ClientState>, id: u64, keys: Frame) {
    let current_id = current.as_ref().map(|c| c.id);
    let mode = if Some(id) == current_id { current.as_ref().and_then(|c| c.tracking.clone()) } else { srv.clients.get(&id).and_then(|c| c.tracking.clone()) };
    let Some(mode) = mode else {
        return;
    };
    let mut target = id;
    if mode.redirect != 0 {
        let exists = Some(mode.redirect) == current_id || srv.clients.contains_key(&mode.redirect);
        if !exists {
            // The redirect target is gone: flag it, and tell a RESP3 client.
            let client = if Some(id) == current_id { current.as_deref_mut() } else { srv.clients.get_mut(&id) };
            if let Some(c) = client {
                if let Some(t) = c.tracking.as_mut() {
                    t.redirect_broken = true;
                }
                if c.proto == ProtocolVersion::Resp3 {
                    let notice = Frame::Push(vec![Frame::bulk("tracking-redir-broken"), Frame::Integer(mode.redirect as i64)]);
                    deliver(srv, current, id, notice);
                }
            }
            return;
        }
        target = mode.redirect;
    }
    let (proto, subscribed) = if Some(target) == current_id {
        current.as_ref().map(|c| (c.proto, c.subscriptions() > 0)).unwrap_or((ProtocolVersion::Resp2, false))
    } else {
        match srv.clients.get(&target) {
            Some(c) => (c.proto, c.subscriptions() > 0),
            None => return,
        }
    };
    let frame = if proto == ProtocolVersion::Resp3 {
        Frame::Push(vec![Frame::bulk("invalidate"), keys])
    } else if mode.redirect != 0 && subscribed {
        Frame::Push(vec![Frame::bulk("message"), Frame::bulk(INVALIDATE_CHANNEL), keys])
    } else {
        // A RESP2 connection cannot take pushes in between its replies.
        return;
    };
    deliver(srv, current, target, frame);
}

/// The running client gets its invalidations after its reply; others at once.
fn deliver(srv: &mut ServerState, current: Option<&mut ClientState>, id: u64, frame: Frame) {
    if current.as_ref().is_some_and(|c| c.id == id) {
        srv.tracking.pending_for_current.push((id, frame));
        return;
    }
    if let Some(c) = srv.clients.get(&id) {
        c.send_raw(frame.to_bytes(c.proto));
    }
}

/// End of a client's command: BCAST batches go out, and the invalidations meant for the
/// client itself follow its reply (the reply joins `deferred`, the marker stands in).
pub fn after_command(srv: &mut ServerState, client: &mut ClientState, reply: Frame) -> Frame {
    broadcast_pending(srv, Some(client));
    let mine = take_pending_for(srv, client);
    if mine.is_empty() {
        return reply;
    }
    if !crate::server::dispatch::is_no_reply_marker(&reply) {
        client.deferred.push(reply);
    }
    client.deferred.extend(mine);
    Frame::Simple(crate::server::commands::pubsub::NO_REPLY.to_string())
}

/// The invalidations queued for `client` while it runs a command; those for other clients
/// (queued while serving a blocked client inside this command) are sent now.
pub fn take_pending_for(srv: &mut ServerState, client: &ClientState) -> Vec<Frame> {
    let mut mine = Vec::new();
    for (id, frame) in std::mem::take(&mut srv.tracking.pending_for_current) {
        if id == client.id {
            mine.push(frame);
        } else if let Some(c) = srv.clients.get(&id) {
            c.send_raw(frame.to_bytes(c.proto));
        }
    }
    mine
}

// ------------------------------------------------------------------ on / off

fn enable(srv: &mut ServerState, client: &mut ClientState, redirect: u64, opts: &ClientTracking, prefixes: &[Bytes]) {
    if client.tracking.is_none() {
        srv.tracking.clients += 1;
    }
    let t = turned_on(client.tracking.take(), redirect, opts, prefixes);
    for p in &t.prefixes {
        srv.tracking.prefixes.entry(p.clone()).or_default().clients.insert(client.id);
    }
    client.tracking = Some(t);
}

/// A client's tracking mode after a valid CLIENT TRACKING ON over `current` (BCAST
/// without PREFIX tracks the empty prefix: every key).
pub fn turned_on(current: Option<ClientTracking>, redirect: u64, opts: &ClientTracking, prefixes: &[Bytes]) -> ClientTracking {
    let mut t = current.unwrap_or_default();
    t.redirect = redirect;
    t.redirect_broken = false;
    t.bcast = opts.bcast;
    t.optin = opts.optin;
    t.optout = opts.optout;
    t.noloop = opts.noloop;
    if opts.bcast {
        if prefixes.is_empty() {
            t.prefixes.insert(Bytes::new());
        }
        t.prefixes.extend(prefixes.iter().cloned());
    }
    t
}

/// Tracking off (CLIENT TRACKING OFF, RESET, disconnect). Keys it read stay in the table
/// until they change, as in Redis.
pub fn disable(srv: &mut ServerState, client: &mut ClientState) {
    let Some(t) = client.tracking.take() else {
        return;
    };
    srv.tracking.clients = srv.tracking.clients.saturating_sub(1);
    for p in &t.prefixes {
        if let Some(state) = srv.tracking.prefixes.get_mut(p) {
            state.clients.remove(&client.id);
            if state.clients.is_empty() {
                srv.tracking.prefixes.remove(p);
            }
        }
    }
}

fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// What a valid CLIENT TRACKING asks for.
pub enum TrackingRequest {
    Off,
    On { redirect: u64, opts: ClientTracking, prefixes: Vec<Bytes> },
}

/// Parses and checks CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN]
/// [OPTOUT] [NOLOOP] against the client's current mode, with Redis's errors. `exists`
/// says whether a client id is connected. Shared by the server and the sentinel.
pub fn parse_tracking(args: &[Bytes], current: Option<&ClientTracking>, exists: impl Fn(i64) -> bool) -> Result<TrackingRequest, Frame> {
    let syntax_error = crate::server::command::syntax_error;
    let mut redirect: u64 = 0;
    let mut opts = ClientTracking::default();
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        let opt = args[j].to_ascii_lowercase();
        match opt.as_slice() {
            b"redirect" if more => {
                j += 1;
                if redirect != 0 {
                    return Err(Frame::error("ERR A client can only redirect to a single other client"));
                }
                let id = crate::server::command::parse_int(&args[j])?;
                if id <= 0 || !exists(id) {
                    return Err(Frame::error("ERR The client ID you want redirect to does not exist"));
                }
                redirect = id as u64;
            }
            b"bcast" => opts.bcast = true,
            b"optin" => opts.optin = true,
            b"optout" => opts.optout = true,
            b"noloop" => opts.noloop = true,
            b"prefix" if more => {
                j += 1;
                prefixes.push(args[j].clone());
            }
            _ => return Err(syntax_error()),
        }
        j += 1;
    }
    let on_off = args[2].to_ascii_lowercase();
    if on_off.as_slice() == b"off" {
        return Ok(TrackingRequest::Off);
    }
    if on_off.as_slice() != b"on" {
        return Err(syntax_error());
    }
    if !opts.bcast && !prefixes.is_empty() {
        return Err(Frame::error("ERR PREFIX option requires BCAST mode to be enabled"));
    }
    if let Some(t) = current {
        if t.bcast != opts.bcast {
            return Err(Frame::error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
    }
    if opts.bcast && (opts.optin || opts.optout) {
        return Err(Frame::error("ERR OPTIN and OPTOUT are not compatible with BCAST"));
    }
    if opts.optin && opts.optout {
        return Err(Frame::error("ERR You can't specify both OPTIN mode and OPTOUT mode"));
    }
    if let Some(t) = current {
        if (opts.optin && t.optout) || (opts.optout && t.optin) {
            return Err(Frame::error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
    }
    if opts.bcast {
        let existing: Vec<Bytes> = current.map(|t| t.prefixes.iter().cloned().collect()).unwrap_or_default();
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                return Err(Frame::error(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(e)
                )));
            }
            if let Some(other) = prefixes[i + 1..].iter().find(|o| overlap(p, o)) {
                return Err(Frame::error(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(other)
                )));
            }
        }
    }
    Ok(TrackingRequest::On { redirect, opts, prefixes })
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP]
pub fn client_tracking(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let self_id = ctx.client.id;
    let clients = &ctx.srv.clients;
    let request = parse_tracking(args, ctx.client.tracking.as_ref(), |id| id as u64 == self_id || clients.contains_key(&(id as u64)));
    match request {
        Err(e) => e,
        Ok(TrackingRequest::Off) => {
            disable(ctx.srv, ctx.client);
            Frame::ok()
        }
        Ok(TrackingRequest::On { redirect, opts, prefixes }) => {
            enable(ctx.srv, ctx.client, redirect, &opts, &prefixes);
            Frame::ok()
        }
    }
}

/// CLIENT CACHING YES|NO: the next command is (YES, OPTIN) or is not (NO, OPTOUT) tracked.
pub fn client_caching(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    caching(ctx.client.tracking.as_mut(), &args[2])
}

/// CLIENT CACHING on a client's tracking mode (server and sentinel).
pub fn caching(tracking: Option<&mut ClientTracking>, value: &[u8]) -> Frame {
    let Some(t) = tracking.filter(|t| t.optin || t.optout) else {
        return Frame::error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    };
    match value.to_ascii_lowercase().as_slice() {
        b"yes" if t.optin => t.caching = true,
        b"yes" => return Frame::error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."),
        b"no" if t.optout => t.caching = true,
        b"no" => return Frame::error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."),
        _ => return crate::server::command::syntax_error(),
    }
    Frame::ok()
}

pub fn client_getredir(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    getredir(ctx.client.tracking.as_ref())
}

/// CLIENT GETREDIR: the redirect target, 0 for none, -1 when not tracking.
pub fn getredir(tracking: Option<&ClientTracking>) -> Frame {
    Frame::Integer(tracking.map_or(-1, |t| t.redirect as i64))
}

pub fn client_trackinginfo(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    trackinginfo(ctx.client.tracking.as_ref())
}

/// CLIENT TRACKINGINFO of a client's tracking mode (server and sentinel).
pub fn trackinginfo(t: Option<&ClientTracking>) -> Frame {
    let mut names: Vec<&str> = vec![if t.is_some() { "on" } else { "off" }];
    if let Some(t) = t {
        if t.bcast {
            names.push("bcast");
        }
        if t.optin {
            names.push("optin");
            if t.caching {
                names.push("caching-yes");
            }
        }
        if t.optout {
            names.push("optout");
            if t.caching {
                names.push("caching-no");
            }
        }
        if t.noloop {
            names.push("noloop");
        }
        if t.redirect_broken {
            names.push("broken_redirect");
        }
    }
    Frame::Map(vec![
        (Frame::bulk("flags"), Frame::Set(names.into_iter().map(Frame::bulk).collect())),
        (Frame::bulk("redirect"), Frame::Integer(t.map_or(-1, |t| t.redirect as i64))),
        (Frame::bulk("prefixes"), Frame::Array(t.map(|t| t.prefixes.iter().map(|p| Frame::Bulk(p.clone())).collect()).unwrap_or_default())),
    ])
}

/// The `redir=` field of CLIENT LIST: -1 when not tracking.
pub fn redirect_field(c: &ClientState) -> i64 {
    c.tracking.as_ref().map_or(-1, |t| t.redirect as i64)
}
