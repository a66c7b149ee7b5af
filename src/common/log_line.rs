//! Redis's log line: `PID:R DD Mon YYYY HH:MM:SS.mmm <mark> message`, where R is the role
//! char (`M` master, `S` replica, `C` before start-up or a child, `X` sentinel) and the mark
//! gives the level. Log scrapers and test harnesses parse these lines.

/// The Redis log levels, lowest first (`loglevel` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Verbose,
    Notice,
    Warning,
}

impl Level {
    /// The char Redis writes after the timestamp.
    pub fn mark(self) -> char {
        match self {
            Level::Debug => '.',
            Level::Verbose => '-',
            Level::Notice => '*',
            Level::Warning => '#',
        }
    }

    /// A `loglevel` value; unknown names are notice (the default).
    pub fn parse(s: &str) -> Level {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "verbose" => Level::Verbose,
            "warning" => Level::Warning,
            _ => Level::Notice,
        }
    }
}

/// One full line, newline included, stamped now.
pub fn format_line(role: char, level: Level, msg: &str) -> String {
    let now = chrono::Utc::now();
    format!("{}:{} {} {} {}\n", std::process::id(), role, now.format("%d %b %Y %H:%M:%S%.3f"), level.mark(), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_redis_shape() {
        let line = format_line('X', Level::Warning, "+monitor master m 127.0.0.1 6379 quorum 2");
        let (pid, rest) = line.split_once(':').unwrap();
        assert_eq!(pid, std::process::id().to_string());
        assert!(rest.starts_with("X "), "{line}");
        // `X 07 Dec 2026 18:38:17.269 # +monitor ...`
        let parts: Vec<&str> = rest.splitn(7, ' ').collect();
        assert_eq!(parts[1].len(), 2, "{line}");
        assert_eq!(parts[2].len(), 3, "{line}");
        assert_eq!(parts[3].len(), 4, "{line}");
        assert_eq!(parts[4].len(), "18:38:17.269".len(), "{line}");
        assert_eq!(parts[5], "#");
        assert_eq!(parts[6], "+monitor master m 127.0.0.1 6379 quorum 2\n");
    }

    #[test]
    fn marks_and_names_as_redis() {
        let marks: Vec<char> = ["debug", "verbose", "notice", "warning"].iter().map(|n| Level::parse(n).mark()).collect();
        assert_eq!(marks, vec!['.', '-', '*', '#']);
        assert_eq!(Level::parse("NOTICE"), Level::Notice);
    }
}
