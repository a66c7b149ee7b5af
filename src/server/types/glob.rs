//! Glob-style pattern matching exactly as Redis's `stringmatchlen` (util.c, 7.0), used by
//! KEYS, SCAN/HSCAN/SSCAN/ZSCAN MATCH, PSUBSCRIBE, CONFIG GET, COMMAND LIST FILTERBY PATTERN...
//!
//! Semantics kept bug-for-bug: `*`, `?`, `[...]` with `^` negation, ranges `a-z` (reversed
//! ranges accepted), `\` escapes (inside and outside brackets), an unclosed `[` matches as if
//! closed at the end of the pattern, bytes compare as C `char` (signed) inside ranges, and the
//! recursion guard (nesting > 1000 gives no match) plus the "skip longer matches" pruning that
//! keeps `*a*a*a*...b` patterns linear-ish.

/// KEYS / SCAN MATCH semantics (case-sensitive): Redis short-cuts a lone `*` to "everything",
/// so it also matches the empty key, which plain `stringmatchlen("*", "")` would not.
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    pattern == b"*" || string_match(pattern, string, false)
}

/// Exactly `stringmatchlen`: PSUBSCRIBE / PUBLISH (where `*` does not match the channel ""),
/// CONFIG GET and friends. With `nocase` ASCII letters compare case-insensitively.
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, nocase, &mut skip_longer, 0)
}

/// C `tolower` on a (possibly signed) char value: only ASCII letters change.
#[inline]
fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// Byte as C `char` on x86/ARM Linux-x86 (signed), which matters for `[..-..]` ranges.
#[inline]
fn as_char(b: u8) -> i32 {
    b as i8 as i32
}

fn match_impl(pat: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > 1000 {
        return false;
    }
    // `p`/`si` are the C pointers; the C code relies on NUL terminators, we read 0 past the end.
    let at = |i: usize| -> u8 { pat.get(i).copied().unwrap_or(0) };
    let mut p = 0usize;
    let mut si = 0usize;
    while p < pat.len() && si < s.len() {
        match pat[p] {
            b'*' => {
                while p < pat.len() && at(p + 1) == b'*' {
                    p += 1;
                }
                if pat.len() - p == 1 {
                    return true;
                }
                while si < s.len() {
                    if match_impl(&pat[p + 1..], &s[si..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                // The rest of the pattern matched nowhere in the rest of the string, so no
                // earlier '*' can help by consuming more: prune the whole search.
                *skip_longer = true;
                return false;
            }
            b'?' => {
                si += 1;
            }
            b'[' => {
                p += 1;
                let not = at(p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                let c = s[si];
                loop {
                    let remaining = pat.len().saturating_sub(p);
                    if at(p) == b'\\' && remaining >= 2 {
                        p += 1;
                        if at(p) == c {
                            matched = true;
                        }
                    } else if at(p) == b']' && remaining > 0 {
                        break;
                    } else if remaining == 0 {
                        // Unclosed class: C steps back so the common `pattern++` lands at the end.
                        p -= 1;
                        break;
                    } else if remaining >= 3 && at(p + 1) == b'-' {
                        let mut start = as_char(at(p));
                        let mut end = as_char(at(p + 2));
                        let mut ch = as_char(c);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = lower(start);
                            end = lower(end);
                            ch = lower(ch);
                        }
                        p += 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if nocase {
                        if lower(as_char(at(p))) == lower(as_char(c)) {
                            matched = true;
                        }
                    } else if at(p) == c {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            other => {
                let mut pc = other;
                if other == b'\\' && pat.len() - p >= 2 {
                    p += 1;
                    pc = pat[p];
                }
                let equal = if nocase {
                    lower(as_char(pc)) == lower(as_char(s[si]))
                } else {
                    pc == s[si]
                };
                if !equal {
                    return false;
                }
                si += 1;
            }
        }
        p += 1;
        if si == s.len() {
            while p < pat.len() && pat[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pat.len() && si == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        string_match(p.as_bytes(), s.as_bytes(), false)
    }

    /// Redis's regression test ("pattern matching long nested loops"): without the pruning
    /// this is exponential and KEYS never returns. Every glob of the server and the sentinel
    /// goes through this one matcher.
    #[test]
    fn nested_stars_stay_fast() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let key = [b'a'; 40];
            let _ = tx.send((glob_match(b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &key), glob_match(b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", &key)));
        });
        // A hang bound, not a speed threshold: the pruned match takes microseconds.
        let got = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the match did not return");
        assert_eq!(got, (false, true));
    }

    #[test]
    fn lone_star_matches_empty_only_in_keys_semantics() {
        assert!(glob_match(b"*", b""));
        assert!(!string_match(b"*", b"", false), "PSUBSCRIBE * does not match the channel \"\"");
        assert!(!glob_match(b"?", b""));
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("*", ""), "stringmatchlen never matches an empty string");
        assert!(!m("**", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(!m("h*llo", "heeeelo"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("**a**", "xxaxx"));
        assert!(m("abc*", "abc"));
        assert!(m("abc**", "abc"));
        assert!(!m("abc?", "abc"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are accepted");
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("[\\]]", "]"));
        assert!(m("[a\\-z]", "-"));
        assert!(!m("[a\\-z]", "b"));
        // `a-]` is a range from 'a' to ']' in Redis (']' is consumed as range end).
        assert!(m("[a-]", "b") == (b'b' >= b']' && b'b' <= b'a'));
        // unclosed class behaves as closed at the end of the pattern
        assert!(m("[abc", "b"));
        assert!(!m("[abc", "d"));
        assert!(m("x[", "x") == false);
    }

    #[test]
    fn escapes_and_nocase() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?c", "a?c"));
        assert!(!m("a\\?c", "abc"));
        assert!(m("ab\\", "ab\\"), "trailing backslash matches itself");
        assert!(string_match(b"HeLLo*", b"hello world", true));
        assert!(string_match(b"[A-C]x", b"bx", true));
        assert!(!string_match(b"HeLLo*", b"hello world", false));
    }

    #[test]
    fn pathological_patterns_terminate_fast() {
        let pat = "a*".repeat(30) + "b";
        let s = "a".repeat(60);
        let t = std::time::Instant::now();
        assert!(!m(&pat, &s));
        assert!(t.elapsed().as_secs() < 2);
        // nesting guard
        let deep = "*?".repeat(1200);
        let long = "x".repeat(1300);
        assert!(!m(&deep, &long));
    }

    /// Naive reference for the common subset (no classes/escapes) to cross-check '*' and '?'.
    fn naive(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(b'*'), _) => naive(&p[1..], s) || (!s.is_empty() && naive(p, &s[1..])),
            (Some(b'?'), Some(_)) => naive(&p[1..], &s[1..]),
            (Some(c), Some(d)) if c == d => naive(&p[1..], &s[1..]),
            _ => false,
        }
    }

    proptest::proptest! {
        #[test]
        fn star_question_agree_with_naive(p in "[ab*?]{0,8}", s in "[ab]{0,10}") {
            let expected = if s.is_empty() { p.is_empty() } else { naive(p.as_bytes(), s.as_bytes()) };
            proptest::prop_assert_eq!(string_match(p.as_bytes(), s.as_bytes(), false), expected);
        }

        #[test]
        fn never_panics(p in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
                        s in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
                        nocase in proptest::bool::ANY) {
            let _ = string_match(&p, &s, nocase);
        }
    }
}
