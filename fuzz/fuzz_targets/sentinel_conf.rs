//! The sentinel.conf parser: no panic; an accepted file renders (what CONFIG REWRITE
//! writes) to text that parses again and renders the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redis_failover::sentinel::config::{parse, render};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `include` reads files: a file-system effect, not parsing.
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().to_ascii_lowercase().trim_start_matches('"').starts_with("include"))
        .map(|l| format!("{l}\n"))
        .collect();
    let Ok(cfg) = parse(&text) else { return };
    // Re-reading a rewrite may change it once, as in Redis (the `default` user line is applied
    // after a reset, which adds sanitize-payload); from then on it must be stable.
    // A rewrite keeps the old file's layout: each one is rendered over the text before it.
    let first = render(&cfg, &text);
    let reparse = |text: &str| parse(text).unwrap_or_else(|e| panic!("rendered config refused: {e}\n{text}"));
    let second = render(&reparse(&first), &first);
    assert_eq!(render(&reparse(&second), &second), second, "rendering is not stable");
});
