//! The redis.conf parser: no panic on any text; an accepted file renders (CONFIG GET of
//! every parameter) and every value it holds is accepted again by CONFIG SET's parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redis_failover::server::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `include` reads files and `dir` changes the working directory: file-system effects,
    // not parsing, and a fuzzer must not follow arbitrary paths.
    let text: String = text
        .lines()
        .filter(|l| {
            let word = l.trim_start().split_ascii_whitespace().next().unwrap_or("").to_ascii_lowercase();
            !matches!(word.trim_matches('"'), "include" | "dir")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut cfg = Config::default();
    if cfg.load_text(&text, None).is_err() {
        return;
    }
    let mut all = std::collections::BTreeMap::new();
    cfg.get_matching(b"*", &mut all);
    let pairs: Vec<(String, String)> =
        all.into_iter().filter(|(name, _)| name != "dir").collect();
    let mut fresh = Config::default();
    for (name, value) in pairs {
        if let Err(e) = fresh.set_many(&[(name.clone(), value.clone())]) {
            // Immutable parameters are refused by CONFIG SET whatever their value.
            assert!(e.contains("immutable") || e.contains("protected"), "{name} {value:?} refused on re-set: {e}");
        }
    }
});
