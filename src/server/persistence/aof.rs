//! Append-only file as Redis 7.0: RESP command encoding and parsing (with truncation
//! handling and MULTI/EXEC atomicity), the multi-part manifest (`appenddirname`, base +
//! incr files), and loading a whole AOF directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::rdb::RdbError;
use super::rdb_load::{RdbItem, RdbReader};
use crate::resp::{encode_command, split_args};

#[derive(Debug, Error)]
pub enum AofError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("Bad file format reading the append only file {path} at offset {offset}: {reason}")]
    BadFormat { path: PathBuf, offset: usize, reason: &'static str },
    #[error("Unexpected end of file reading the append only file {path} at offset {offset} (aof-load-truncated is no, or it is not the last file)")]
    Truncated { path: PathBuf, offset: usize },
    #[error("\n*** FATAL AOF MANIFEST FILE ERROR ***\nReading the manifest file {path}, at line {line}\n{reason}")]
    Manifest { path: PathBuf, line: usize, reason: String },
    #[error("RDB preamble of {path}: {source}")]
    Rdb { path: PathBuf, source: RdbError },
}

/// Appends one command in RESP form, as Redis writes it to the AOF.
pub fn append_command(out: &mut BytesMut, argv: &[Bytes]) {
    let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
    encode_command(&refs, out);
}

/// How a parse of a command stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AofTail {
    /// Every byte was consumed by complete commands (and transactions).
    Complete,
    /// The data ends inside a command or an unfinished MULTI: only `valid_len` bytes are good.
    Truncated { valid_len: usize },
}

/// Parses RESP commands from `data`, calling `apply` for each. Commands between MULTI and
/// EXEC are delivered only once EXEC is read, so a truncated transaction is never applied.
/// `#` annotation lines (Redis 7.0) are skipped. Malformed data is an error with its offset.
/// As in Redis, a file cut inside a command is valid up to the last whole command (even
/// within a MULTI block: the next load finds the block unfinished), and a file that ends
/// cleanly inside a MULTI block is valid up to the MULTI.
pub fn parse_commands(
    data: &[u8],
    mut apply: impl FnMut(Vec<Bytes>),
) -> Result<AofTail, (usize, &'static str)> {
    let mut pos = 0usize;
    // Before any unfinished MULTI, and after the last whole command or annotation.
    let (mut before_multi, mut last_whole) = (0usize, 0usize);
    let mut in_multi: Option<Vec<Vec<Bytes>>> = None;
    loop {
        if pos == data.len() {
            return Ok(if in_multi.is_some() { AofTail::Truncated { valid_len: before_multi } } else { AofTail::Complete });
        }
        if data[pos] == b'#' {
            match find_crlf(&data[pos..]) {
                Some(end) => {
                    pos += end + 2;
                    last_whole = pos;
                    if in_multi.is_none() {
                        before_multi = pos;
                    }
                    continue;
                }
                None => return Ok(AofTail::Truncated { valid_len: last_whole }),
            }
        }
        let start = pos;
        let argv = match read_command(data, &mut pos) {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(AofTail::Truncated { valid_len: last_whole }),
            Err(reason) => return Err((start, reason)),
        };
        last_whole = pos;
        let name = argv[0].to_ascii_lowercase();
        match (&mut in_multi, name.as_slice()) {
            (None, b"multi") => in_multi = Some(vec![argv]),
            (Some(queued), b"exec") => {
                queued.push(argv);
                for cmd in in_multi.take().expect("in multi") {
                    apply(cmd);
                }
                before_multi = pos;
            }
            (Some(queued), _) => queued.push(argv),
            (None, _) => {
                apply(argv);
                before_multi = pos;
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn read_number(data: &[u8], pos: &mut usize, prefix: u8) -> Result<Option<i64>, &'static str> {
    if *pos >= data.len() {
        return Ok(None);
    }
    if data[*pos] != prefix {
        return Err(if prefix == b'*' { "expected '*'" } else { "expected '$'" });
    }
    let Some(end) = find_crlf(&data[*pos..]) else {
        // A number line can only be short; a long run without CRLF is garbage.
        return if data.len() - *pos > 32 { Err("invalid number line") } else { Ok(None) };
    };
    let n = crate::resp::parse_i64(&data[*pos + 1..*pos + end]).ok_or("invalid number")?;
    *pos += end + 2;
    Ok(Some(n))
}

fn read_command(data: &[u8], pos: &mut usize) -> Result<Option<Vec<Bytes>>, &'static str> {
    let Some(argc) = read_number(data, pos, b'*')? else { return Ok(None) };
    if argc < 1 {
        return Err("invalid argument count");
    }
    let mut argv = Vec::with_capacity((argc as usize).min(1024));
    for _ in 0..argc {
        let Some(len) = read_number(data, pos, b'$')? else { return Ok(None) };
        if len < 0 {
            return Err("invalid bulk length");
        }
        let len = len as usize;
        if data.len() - *pos < len + 2 {
            return Ok(None);
        }
        if &data[*pos + len..*pos + len + 2] != b"\r\n" {
            return Err("bulk string not terminated by CRLF");
        }
        argv.push(Bytes::copy_from_slice(&data[*pos..*pos + len]));
        *pos += len + 2;
    }
    Ok(Some(argv))
}

// ---------------------------------------------------------------- manifest

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AofFileKind {
    Base,
    History,
    Incr,
}

impl AofFileKind {
    fn code(self) -> char {
        match self {
            AofFileKind::Base => 'b',
            AofFileKind::History => 'h',
            AofFileKind::Incr => 'i',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFileInfo {
    pub name: String,
    pub seq: u64,
    pub kind: AofFileKind,
}

/// The `<appendfilename>.manifest` file of the AOF directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AofManifest {
    pub base: Option<AofFileInfo>,
    pub incrs: Vec<AofFileInfo>,
    pub history: Vec<AofFileInfo>,
}

impl AofManifest {
    /// Parses a manifest as Redis 7.0's aofLoadManifestFromFile does, with its error texts:
    /// `Err((line number, reason))` (line 0: the file as a whole).
    pub fn parse(text: &str) -> Result<AofManifest, (usize, String)> {
        const MAX_LINE: usize = 1024;
        let invalid = |lineno: usize| Err((lineno, "Invalid AOF manifest file format".to_string()));
        if text.is_empty() {
            return Err((0, "Found an empty AOF manifest".into()));
        }
        let mut m = AofManifest::default();
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let lineno = i + 1;
            if raw.starts_with('#') {
                continue;
            }
            if raw.len() > MAX_LINE || !raw.ends_with('\n') {
                return Err((lineno, "The AOF manifest file contains too long line".into()));
            }
            let line = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
            let Some(args) = split_args(line.as_bytes()) else { return invalid(lineno) };
            // Fewer than 6 tokens is refused: room for keys a later version may add.
            if line.is_empty() || args.len() < 6 || args.len() % 2 != 0 {
                return invalid(lineno);
            }
            let (mut name, mut seq, mut kind) = (None, 0u64, None);
            for pair in args.chunks(2) {
                let v = String::from_utf8_lossy(&pair[1]).to_string();
                let key = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                match key.as_str() {
                    "file" => {
                        if v.contains('/') {
                            return Err((lineno, "File can't be a path, just a filename".into()));
                        }
                        name = Some(v)
                    }
                    // atoll: leading digits, anything else 0 (refused below).
                    "seq" => seq = v.bytes().take_while(u8::is_ascii_digit).fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))),
                    "type" => kind = v.bytes().next(),
                    _ => {} // unknown keys are ignored, as Redis does
                }
            }
            let (Some(name), true, Some(kind)) = (name.filter(|n| !n.is_empty()), seq != 0, kind) else {
                return invalid(lineno);
            };
            let kind = match kind {
                b'b' => AofFileKind::Base,
                b'h' => AofFileKind::History,
                b'i' => AofFileKind::Incr,
                _ => return Err((lineno, "Unknown AOF file type".into())),
            };
            let info = AofFileInfo { name, seq, kind };
            match kind {
                AofFileKind::Base => {
                    if m.base.is_some() {
                        return Err((lineno, "Found duplicate base file information".into()));
                    }
                    m.base = Some(info)
                }
                AofFileKind::Incr => {
                    if m.incrs.last().is_some_and(|l| l.seq >= info.seq) {
                        return Err((lineno, "Found a non-monotonic sequence number".into()));
                    }
                    m.incrs.push(info)
                }
                AofFileKind::History => m.history.push(info),
            }
        }
        Ok(m)
    }

    pub fn format(&self) -> String {
        let mut out = String::new();
        for f in self.base.iter().chain(self.history.iter()).chain(self.incrs.iter()) {
            let needs_quotes = f.name.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\'' || b == b'\\' || b >= 0x7f);
            // Quoted as Redis's sdscatrepr (`\xNN`), which the parser reads back (found by
            // fuzzing: Rust's `{:?}` wrote `\u{12}`, read back as other characters).
            let name = if needs_quotes { crate::server::dispatch::repr(f.name.as_bytes()) } else { f.name.clone() };
            let _ = writeln!(out, "file {} seq {} type {}", name, f.seq, f.kind.code());
        }
        out
    }

    pub fn last_incr_seq(&self) -> u64 {
        self.incrs.last().map(|i| i.seq).unwrap_or(0)
    }

    pub fn base_seq(&self) -> u64 {
        self.base.as_ref().map(|b| b.seq).unwrap_or(0)
    }
}

/// Names of the files inside `appenddirname`, as Redis 7.0 forms them.
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}
pub fn base_name(appendfilename: &str, seq: u64, rdb_preamble: bool) -> String {
    format!("{appendfilename}.{seq}.base.{}", if rdb_preamble { "rdb" } else { "aof" })
}
pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}

/// What loading an AOF directory produced, for the server to apply.
pub enum AofLoadEvent {
    /// A new file starts: its commands run on a fresh client (database 0), as in Redis.
    FileStart(PathBuf),
    /// An RDB item from a base file with an RDB preamble.
    Rdb(RdbItem),
    /// A command from a base (AOF form) or incr file.
    Command(Vec<Bytes>),
}

/// Summary of a successful load.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AofLoadReport {
    pub files: usize,
    pub commands: u64,
    pub rdb_keys: u64,
    /// Set when the last file was cut at a short read (aof-load-truncated yes).
    pub truncated_file: Option<(PathBuf, usize)>,
}

/// Loads every file of the manifest in `dir` in order: base first, then the incr files.
/// With `load_truncated`, a short read at the end of the LAST file is cut off there
/// (the file is truncated on disk to the last complete command), as Redis does.
/// Returns `Ok(None)` when there is no manifest.
pub fn load_aof_dir(
    dir: &Path,
    appendfilename: &str,
    load_truncated: bool,
    mut sink: impl FnMut(AofLoadEvent),
) -> Result<Option<AofLoadReport>, AofError> {
    let manifest_path = dir.join(manifest_name(appendfilename));
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AofError::Io { path: manifest_path, source }),
    };
    let manifest =
        AofManifest::parse(&text).map_err(|(line, reason)| AofError::Manifest { path: manifest_path.clone(), line, reason })?;
    let mut files: Vec<&AofFileInfo> = manifest.base.iter().collect();
    files.extend(manifest.incrs.iter());
    // Redis's getBaseAndIncrAppendOnlyFilesSize: every file is stat()ed before any loads;
    // one missing is a fatal error
    for info in &files {
        let path = dir.join(&info.name);
        if let Err(source) = std::fs::metadata(&path) {
            warning!("Unable to obtain the AOF file {} length. stat: {}", info.name, super::aof_writer::strerror(&source));
            return Err(AofError::Io { path, source });
        }
    }
    let mut report = AofLoadReport::default();
    let last = files.len().saturating_sub(1);
    for (i, info) in files.iter().enumerate() {
        let path = dir.join(&info.name);
        let data = std::fs::read(&path).map_err(|source| {
            // Redis's loadSingleAppendOnlyFile names the file and the reason
            let why = super::aof_writer::strerror(&source);
            if source.kind() == std::io::ErrorKind::NotFound {
                warning!("The append log file {} doesn't exist: {why}", info.name);
            } else {
                warning!("Fatal error: can't open the append log file {} for reading: {why}", info.name);
            }
            AofError::Io { path: path.clone(), source }
        })?;
        report.files += 1;
        sink(AofLoadEvent::FileStart(path.clone()));
        let mut offset = 0;
        if data.starts_with(b"REDIS") {
            let mut reader = RdbReader::new(&data).map_err(|source| AofError::Rdb { path: path.clone(), source })?;
            while let Some(item) = reader.next_item().map_err(|source| AofError::Rdb { path: path.clone(), source })? {
                if matches!(item, RdbItem::Entry(_)) {
                    report.rdb_keys += 1;
                }
                sink(AofLoadEvent::Rdb(item));
            }
            offset = reader.position();
        }
        let mut count = 0u64;
        let tail = parse_commands(&data[offset..], |argv| {
            count += 1;
            sink(AofLoadEvent::Command(argv));
        })
        .map_err(|(at, reason)| AofError::BadFormat { path: path.clone(), offset: offset + at, reason })?;
        report.commands += count;
        if let AofTail::Truncated { valid_len } = tail {
            let good = offset + valid_len;
            if !(load_truncated && i == last) {
                return Err(AofError::Truncated { path, offset: good });
            }
            warning!("!!! Warning: short read while loading the AOF file {}!!! Truncating to offset {}", path.display(), good);
            let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|source| AofError::Io { path: path.clone(), source })?;
            f.set_len(good as u64).map_err(|source| AofError::Io { path: path.clone(), source })?;
            report.truncated_file = Some((path, good));
        }
    }
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn encode(cmds: &[Vec<Bytes>]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for c in cmds {
            append_command(&mut out, c);
        }
        out.to_vec()
    }

    #[test]
    fn commands_round_trip_and_truncation_is_detected() {
        let cmds = vec![cmd(&["SELECT", "0"]), cmd(&["SET", "k", "v\r\nwith crlf"]), cmd(&["DEL", "k"])];
        let data = encode(&cmds);
        let mut got = Vec::new();
        assert_eq!(parse_commands(&data, |c| got.push(c)), Ok(AofTail::Complete));
        assert_eq!(got, cmds);
        for cut in 1..data.len() {
            let mut n = 0;
            match parse_commands(&data[..cut], |_| n += 1) {
                Ok(AofTail::Truncated { valid_len }) => {
                    assert!(valid_len <= cut);
                    assert_eq!(parse_commands(&data[..valid_len], |_| {}), Ok(AofTail::Complete));
                }
                Ok(AofTail::Complete) => assert!(n > 0),
                Err(e) => panic!("cut {cut}: {e:?}"),
            }
        }
    }

    #[test]
    fn unfinished_transaction_is_not_applied() {
        let cmds = vec![cmd(&["SET", "a", "1"]), cmd(&["MULTI"]), cmd(&["SET", "b", "2"])];
        let data = encode(&cmds);
        let mut got = Vec::new();
        let tail = parse_commands(&data, |c| got.push(c)).unwrap();
        assert_eq!(got, vec![cmd(&["SET", "a", "1"])]);
        assert_eq!(tail, AofTail::Truncated { valid_len: encode(&cmds[..1]).len() });
        // Cut inside a command of the block: valid up to the last whole command, as Redis
        // truncates; loading that prefix then finds the block unfinished.
        let mut cut = data.clone();
        cut.extend_from_slice(b"*1\r\n$4\r\nEX");
        assert_eq!(parse_commands(&cut, |_| {}), Ok(AofTail::Truncated { valid_len: data.len() }));
        let mut full = cmds.clone();
        full.push(cmd(&["EXEC"]));
        let mut n = 0;
        assert_eq!(parse_commands(&encode(&full), |_| n += 1), Ok(AofTail::Complete));
        assert_eq!(n, 4);
    }

    #[test]
    fn garbage_is_a_format_error_with_offset() {
        let mut data = encode(&[cmd(&["SET", "a", "1"])]);
        let at = data.len();
        data.extend_from_slice(b"hello world\r\n");
        assert_eq!(parse_commands(&data, |_| {}), Err((at, "expected '*'")));
        assert!(parse_commands(b"*1\r\n$3\r\nabcXY", |_| {}).is_err());
        assert!(parse_commands(b"#annotation\r\n*1\r\n$4\r\nPING\r\n", |_| {}).is_ok());
    }

    #[test]
    fn manifest_parse_and_format() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = AofManifest::parse(text).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(m.incrs.len(), 2);
        assert_eq!(m.format(), text);
        assert_eq!(AofManifest::parse("file x seq 1 type z").unwrap_err().0, 1);
        assert!(AofManifest::parse("file a seq 1 type b\nfile b seq 2 type b\n").is_err());
        let quoted = AofManifest::parse("file \"my file\" seq 3 type i\n").unwrap();
        assert_eq!(quoted.incrs[0].name, "my file");
        assert_eq!(AofManifest::parse(&quoted.format()).unwrap(), quoted);
        // Redis's refusals, with its texts.
        let reason = |text: &str| AofManifest::parse(text).unwrap_err().1;
        assert_eq!(reason(""), "Found an empty AOF manifest");
        assert_eq!(reason("file a seq 1 type b\n\n"), "Invalid AOF manifest file format");
        assert_eq!(reason("file a seq 0 type b\n"), "Invalid AOF manifest file format");
        assert_eq!(reason("file a seq 1 type b"), "The AOF manifest file contains too long line");
        assert_eq!(reason("file a seq 1 type x\n"), "Unknown AOF file type");
        assert_eq!(reason("file a/b seq 1 type b\n"), "File can't be a path, just a filename");
        assert_eq!(reason("file a seq 2 type i\nfile b seq 2 type i\n"), "Found a non-monotonic sequence number");
        assert!(AofManifest::parse("# comment only\n").unwrap().base.is_none());
        let odd = AofManifest::parse("file \"a\\x12\\\"b\u{e9}\" seq 2 type i\n").unwrap();
        assert_eq!(odd.incrs[0].name, "a\u{12}\"b\u{e9}");
        assert_eq!(AofManifest::parse(&odd.format()).unwrap(), odd);
    }
}
