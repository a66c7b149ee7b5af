//! Inputs the cargo-fuzz target `sentinel_conf` found (fuzz/fuzz_targets/sentinel_conf.rs):
//! an accepted sentinel.conf renders (CONFIG REWRITE's text) to a file that loads again.
use redis_failover::sentinel::config::{parse, render};

fn rewrite_loads_again(text: &str) {
    let Ok(cfg) = parse(text) else { return };
    let reparse = |text: &str| parse(text).unwrap_or_else(|e| panic!("rendered config refused: {e}\n{text}"));
    let first = render(&cfg, text);
    let second = render(&reparse(&first), &first);
    let third = render(&reparse(&second), &second);
    assert_eq!(third, second, "rendering is not stable");
}

/// A `user` line whose rules hold vertical tabs and other control characters (C's isspace
/// counts \v as a space where Rust's is_ascii_whitespace does not).
#[test]
fn user_rules_with_control_characters() {
    rewrite_loads_again("user r\u{b}\u{b}' &123\u{b}? &12\u{14}\u{b}t 1&23 r\u{b}\u{b}' &1z2mi\n");
}

/// `known-sentinel` in the old form without a run id is ignored, as Redis ignores it: kept,
/// each rewrite added another copy of it with an empty id.
#[test]
fn known_sentinel_without_a_run_id_is_ignored() {
    let text = "port 26379\nsentinel monitor mymaster 127.0.0.1 6379 2\nsentinel known-replica mymaster 127.0.0.1 6380\n\
                sentinel knOwn-sentinel mymaster 127.0.0.1nt-epoch 3\nsentinel resolve-hostnames yes\n";
    rewrite_loads_again(text);
    let cfg = parse(text).expect("accepted, as Redis accepts it");
    assert!(!render(&cfg, text).lines().any(|l| l.starts_with("sentinel known-sentinel")), "{}", render(&cfg, text));
}

/// A NUL ends a config line, as C's string functions end it in Redis: `bind` followed by
/// NULs is a `bind` without addresses (refused), not one with empty addresses that the
/// rewrite wrote back as a bare `bind`.
#[test]
fn a_nul_ends_the_line() {
    let text = format!("bind{}\n", "\0".repeat(35));
    rewrite_loads_again(&text);
    assert!(parse(&text).is_err(), "Redis refuses `bind` without an address");
}

/// A `sentinel` option written in another case is replaced by the rewrite, as any option:
/// kept, the re-read file held the sentinel twice and each rewrite added a line.
#[test]
fn sentinel_options_in_another_case_are_rewritten_in_place() {
    let text = "port 13189\nsentinel monitor mymaster 127.0.0.1 6379 2\n\
                sentinel known-senTinel mymaster 127.0.0.1 26380 0123467589abcdef0123456789abcdef01234567\n\
                sentinel myid 0123456789abcdef0123456789abcdef01234568\n";
    rewrite_loads_again(text);
    let cfg = parse(text).expect("accepted");
    let rewritten = render(&cfg, text);
    assert_eq!(rewritten.to_ascii_lowercase().matches("sentinel known-sentinel").count(), 1, "{rewritten}");
}

/// `bind ""` is Redis's bind of no address (the sentinel then refuses to start: it would
/// listen nowhere) and its rewrite writes `bind ""` back: written as a bare `bind`, the rewritten file could not be loaded.
/// An empty address among others is quoted so it reads back the same.
#[test]
fn bind_of_an_empty_address_is_rewritten_quoted() {
    let text = "port 26379\nbind \"\"\nsentinel monitor mymaster 127.0.0.1 6379 2\n";
    rewrite_loads_again(text);
    let cfg = parse(text).expect("accepted, as Redis accepts it");
    assert!(render(&cfg, text).lines().any(|l| l == "bind \"\""), "{}", render(&cfg, text));
    rewrite_loads_again("port 26379\nbind 127.0.0.1 \"\" \"\"\nsentinel monitor mymaster 127.0.0.1 6379 2\n");
}

/// A key or channel pattern holding a space (quoted in the file) is refused as Redis refuses
/// it ("Error in user declaration 'x': Syntax error"): accepted, it was written back unquoted
/// and the rewritten file read a stray word as a rule.
#[test]
fn patterns_with_spaces_are_refused() {
    for line in ["user x on '&a b'\n", "user x on '~a b'\n", "user x on \"&a\\tb\"\n"] {
        let err = parse(&format!("port 26379\n{line}")).expect_err(line);
        assert!(err.to_string().contains("Error in user declaration 'x': Syntax error"), "{err}");
    }
    let crash = std::fs::read("tests/data/fuzz/sentinel_conf-user-pattern-with-spaces").expect("the fuzz find");
    rewrite_loads_again(&String::from_utf8_lossy(&crash));
}

/// A user name (or pattern) holding a quote or a backslash is written quoted by the rewrite:
/// written as ACL LIST shows it (as Redis writes it), the file had an unbalanced quote and
/// could not be loaded again.
#[test]
fn user_names_with_quotes_are_rewritten_quoted() {
    let crash = std::fs::read("tests/data/fuzz/sentinel_conf-user-name-with-a-quote").expect("the fuzz find");
    rewrite_loads_again(&String::from_utf8_lossy(&crash));
    let text = "port 26379\nuser \"o'neil\" on nopass \"~a\\\\b\" \"&c\\\"d\" +@all\n";
    rewrite_loads_again(text);
    let cfg = parse(text).expect("accepted, as Redis accepts it");
    let again = parse(&render(&cfg, text)).expect("the rewrite loads");
    // (the default user comes back with sanitize-payload, as Redis's 'reset' of it gives)
    let oneil = |lines: Vec<String>| lines.into_iter().find(|l| l.starts_with("user o'neil "));
    assert_eq!(oneil(again.acl.config_lines()), Some("user o'neil on nopass ~a\\b resetchannels &c\"d +@all".to_string()));
    assert_eq!(oneil(again.acl.config_lines()), oneil(cfg.acl.config_lines()));
}

/// A quoted bind address holding a carriage return (or any space, quote, control byte) is
/// written back quoted: written raw, the next read split it into other addresses and each
/// rewrite changed the line.
#[test]
fn bind_addresses_with_control_characters_are_rewritten_quoted() {
    let crash = std::fs::read("tests/data/fuzz/sentinel_conf-bind-with-control-characters").expect("the fuzz find");
    rewrite_loads_again(&String::from_utf8_lossy(&crash));
    let text = "port 26379\nbind 127.0.0.1 \"a\\rb\" 'c d'\n";
    rewrite_loads_again(text);
    let cfg = parse(text).expect("accepted");
    assert_eq!(parse(&render(&cfg, text)).expect("the rewrite loads").bind, vec!["127.0.0.1", "a\rb", "c d"]);
}

/// A known sentinel's run id (and the sentinel's own id) holding quotes is written quoted:
/// written raw, the rewritten file had unbalanced quotes (Redis writes it raw too).
#[test]
fn known_sentinel_run_ids_that_need_quoting() {
    let crash = std::fs::read("tests/data/fuzz/sentinel_conf-known-sentinel-run-id-with-quotes").expect("the fuzz find");
    rewrite_loads_again(&String::from_utf8_lossy(&crash));
    let id = "0123456789abcdef0123456789abcdef0123'\"9x";
    let text = format!("port 26379\nsentinel monitor m 127.0.0.1 6379 2\nsentinel known-sentinel m 127.0.0.1 26380 \"{}\"\n", id.replace('"', "\\\""));
    rewrite_loads_again(&text);
    let cfg = parse(&text).expect("accepted, as Redis accepts any run id");
    let first = render(&cfg, &text);
    let again = parse(&first).expect("the rewrite loads");
    let line = "sentinel known-sentinel m 127.0.0.1 26380 \"0123456789abcdef0123456789abcdef0123'\\\"9x\"";
    assert!(render(&again, &first).lines().any(|l| l == line), "{}", render(&again, &first));
}
