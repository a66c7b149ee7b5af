//! The AOF loader: the manifest parser, and a file's contents (RDB preamble then commands)
//! as `load_aof_dir` reads them. No panic; a manifest that parses formats to text that parses
//! to the same manifest; the valid prefix of a truncated file parses as complete.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redis_failover::server::persistence::aof::{parse_commands, AofManifest, AofTail};
use redis_failover::server::persistence::rdb_load::RdbReader;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(manifest) = AofManifest::parse(text) {
            // A manifest naming no file (comments only) formats to nothing, which Redis
            // refuses as empty, and names needing a line over 1024 bytes are refused as too
            // long (by Redis too); the server writes neither.
            let formatted = manifest.format();
            if (manifest.base.is_some() || !manifest.incrs.is_empty()) && formatted.lines().all(|l| l.len() < 1024) {
                assert_eq!(AofManifest::parse(&formatted).as_ref(), Ok(&manifest), "manifest format/parse differ:\n{formatted}");
            }
        }
    }
    let mut offset = 0;
    if data.starts_with(b"REDIS") {
        let Ok(reader) = RdbReader::new(data) else { return };
        let mut reader = reader.with_checksum_verification(false);
        loop {
            match reader.next_item() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        offset = reader.position();
        assert!(offset <= data.len());
    }
    let body = &data[offset..];
    let mut commands = 0usize;
    if let Ok(AofTail::Truncated { valid_len }) = parse_commands(body, |_| commands += 1) {
        assert!(valid_len <= body.len());
        // The valid prefix loads the same commands; cut inside a MULTI block it ends with
        // that block unfinished, whose MULTI is then the end (Redis's two-step recovery).
        let mut again = 0usize;
        match parse_commands(&body[..valid_len], |_| again += 1) {
            Ok(AofTail::Complete) => {}
            Ok(AofTail::Truncated { valid_len: before_multi }) => {
                assert!(before_multi < valid_len, "the valid prefix is truncated at its own end");
                assert_eq!(parse_commands(&body[..before_multi], |_| {}), Ok(AofTail::Complete));
            }
            Err(e) => panic!("the valid prefix is malformed: {e:?}"),
        }
        assert_eq!(again, commands, "the valid prefix holds a different number of commands");
    }
});
